"""The handlers behind the Gradio page's buttons and its /generate API; `app.py` holds only the layout.

    backend = ImagenDemo(checkpoint_path())       # loads nothing yet (serving.checkpoint_path)
    for update in backend.generate_live("red apple", 4.0, 15, 0, False, 10, "ddpm", True):
        live, finals, timeline, status, seed, replay, frames = update      # what the page shows
    for frame in backend.generate("red apple", 4.0, 15, 0, False, 10, "ddpm", True):
        x_t, x0_pred, image_64, image_256, timeline, status, seed = frame  # the /generate API: images

Every handler is a generator over `ImagenPipeline.generate`, the same one the CLI drains. The page's
handler turns each `Step` into a small inline HTML frame (live_view.py: no file, no second
request); the API's handler into images, as gradio_client expects (api_images.py). Bad input
becomes a `gr.Error` with a message a user can act on (inputs.py); the server keeps serving.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from PIL import Image

from ..config import Settings
from ..images import grid
from ..instruments import words
from ..samplers import SAMPLERS, Step
from .api_images import TIMELINE_STEPS, Timeline, display, fresh
from .gan_panel import GanPanel
from .inputs import (
    Limits,
    check_prompt,
    checked_settings,
    choice,
    flag,
    number,
    pick_seed,
    truncation_notice,
    user_error,
    whole_number,
)
from .live_view import Frame, SamplerColumn, finals_html, live_html, samplers_html, schedule_curve, timeline_html
from .pacing import FrameLimiter, FramePacer
from .serving import SharedPipeline, read_config
from .status import RunRecord, describe_step
from .styles import AS_TYPED, restyle, with_style

if TYPE_CHECKING:  # the pipeline (and diffusers) load on the first request, not with the page
    from ..pipeline import ImagenPipeline

SWEEP_SCALES = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # 3: the shipped default
SWEEP_TILE = 128
# What each instrument costs, measured on the 2-core reference machine (benchmarks/latency.py --levers).
ATTENTION_COST = ("Costs about a tenth more time on the 64 px stage (6% and 19% in two runs on 2 cores): "
                  "unfused attention, recorded.")
GUIDANCE_COST = ("Free on the guided steps (both halves run anyway); on the others, and at w = 1, it runs the "
                 "caption-free half too: about 1.4x the 64 px stage at the defaults.")


def guidance_info(defaults: Settings) -> str:
    """The guidance slider's help line; it says which steps are guided when not all of them are."""
    info = "How strongly to follow the prompt. 1 = no extra push; 0 ignores it."
    if defaults.guidance_min_t:
        info += f" Applied while the image is mostly noise (t ≥ {defaults.guidance_min_t}), where its shape forms."
    return info


GenerateOutputs = tuple[Image.Image | None, Image.Image | None, Image.Image | None, Image.Image | None,
                        list[tuple[Image.Image, str]] | None, str, int]


# ---------------------------------------------------------------- handlers


@dataclass(frozen=True)
class Request:
    """A generation request whose every argument has been checked."""

    pipe: ImagenPipeline
    prompt: str
    seed: int
    settings: Settings
    notice: str  # a truncation notice, or ""

    def steps(self, **instruments: bool) -> Iterator[Step]:
        return self.pipe.generate(self.prompt, seed=self.seed, settings=self.settings, **instruments)


class ImagenDemo:
    """The handlers app.py wires to its buttons. Parameter names are the API's argument names.

    app.py passes every argument raw (preprocess=False), so each is checked here, by name, against
    the range the page's own control allows."""

    def __init__(self, path: Path, device: str = "auto", dtype: str = "auto"):
        self.pipeline = SharedPipeline(path, device, dtype)
        config = read_config(Path(path))
        self.defaults, self.has_sr, self.styles = config.defaults, config.sr is not None, config.styles
        self.default_style = config.default_style
        self.limits = Limits.around(self.defaults)
        self.gan_panel = GanPanel(Path(path), self.pipeline, self.limits, device)

    def style_control(self) -> tuple[list[tuple[str, str]], str, str]:
        """The drawing-style radio's (label, value) choices, its first value and its label. A checkpoint
        that learned which style a bare name means draws prompts as typed by default; one whose bare
        names blend two styles adds its first style to a prompt that names none."""
        choices = [(s.removesuffix(" style"), s) for s in self.styles]
        if self.default_style:
            shown = self.default_style.removesuffix(" style")
            return ([(AS_TYPED, AS_TYPED), *choices], AS_TYPED,
                    f"Drawing style: added to a prompt that names none (as typed, it is drawn in {shown} style)")
        return [*choices, (AS_TYPED, AS_TYPED)], self.styles[0] if self.styles else AS_TYPED, \
            "Drawing style: added to a prompt that names none"

    def add_style(self, prompt: object, style: object) -> object:
        """Before each run: the picked style added to a prompt that names none (`with_style`)."""
        return with_style(prompt, style, self.styles)

    def restyle(self, prompt: object, style: object) -> object:
        """On picking a style: the prompt's trailing style replaced by it (`restyle`)."""
        return restyle(prompt, style, self.styles)

    def request(self, prompt: object, guidance_scale: object, steps: object, seed: object, randomize_seed: object,
                sr_steps: object, sampler: object, sr: object, sr_consistency: object = None) -> Request:
        """Check every argument by name, load the pipeline (once) and check the settings against it.
        `sr_consistency` None keeps the checkpoint's default."""
        lim = self.limits
        prompt, cut = check_prompt(prompt)
        guidance_scale = number("guidance_scale", guidance_scale, 0, lim.max_guidance)
        steps = whole_number("steps", steps, 1, lim.max_steps)
        seed = pick_seed(seed, randomize_seed)
        sr_steps = whole_number("sr_steps", sr_steps, 1, lim.max_sr_steps)
        sampler = choice("sampler", sampler, SAMPLERS)
        sr = flag("sr", sr)
        if sr_consistency is not None:  # None: Settings.with_overrides keeps the checkpoint's default
            sr_consistency = flag("sr_consistency", sr_consistency)
        pipe = self.pipeline.get()
        settings = checked_settings(pipe, guidance_scale=guidance_scale, steps=steps, sampler=sampler, sr=sr,
                                    sr_steps=sr_steps, sr_consistency=sr_consistency)
        notice = truncation_notice(pipe, prompt, cut)
        if notice:
            gr.Warning(notice)
        return Request(pipe, prompt, seed, settings, notice)

    def generate_live(self, prompt: str, guidance_scale: float, steps: float, seed: float, randomize_seed: bool,
                      sr_steps: float, sampler: str, sr: bool, sr_consistency: bool | None = None,
                      attention: bool = False, guidance_parts: bool = False) -> Iterator[tuple]:
        """The page's handler: every step as an inline frame (x_t, x0 and the schedule plot), then the
        final images, the timeline and the replay slider, all inline HTML: no file is written.
        `attention` adds each word's cross-attention map to the base stage's frames, `guidance_parts`
        the caption-free and captioned predictions that guidance mixes.

        Yields (live, finals, timeline, status, seed used, replay slider, replay state, word chips)."""
        req = self.request(prompt, guidance_scale, steps, seed, randomize_seed, sr_steps, sampler, sr, sr_consistency)
        attention, guidance_parts = flag("attention", attention), flag("guidance_parts", guidance_parts)
        stages = ["base", "sr"] if req.settings.sr else ["base"]
        curves = {stage: schedule_curve(req.pipe, stage) for stage in stages}
        spans = words(req.pipe.text_encoder, req.prompt) if attention else None
        chips = gr.update(visible=bool(spans), value="all",
                          choices=[(w, str(k)) for k, (w, _) in enumerate(spans or [])] + [("all words", "all")])
        status = f"{req.notice}Encoding the prompt… (seed {req.seed})"
        # Clear the previous run at once, so nothing stale sits beside the new frames.
        yield (live_html(None, [], curves, "Encoding the prompt…"), "", "", status, req.seed,
               gr.update(visible=False), None, chips)

        run, frames, pacer, told = RunRecord(), [], FramePacer(), None
        for step in req.steps(attention=attention, guidance_parts=guidance_parts):
            # Every step is encoded, sent or not: the replay shows them all.
            frames.append(Frame.of(step, spans, req.settings.guidance_at(step.timestep)))
            run.saw(step)
            if not pacer.ready(step):
                continue
            elapsed = run.sending()
            # The frame's own caption tells the step; the status sentence (Markdown, which the browser
            # renders slowly) changes only with the first frame sent of each stage, whichever step it is.
            status = req.notice + describe_step(step, elapsed) if step.stage != told else gr.skip()
            told = step.stage
            yielded_at = time.perf_counter()
            yield (live_html(frames[-1], frames, curves), gr.skip(), gr.skip(), status, gr.skip(), gr.skip(),
                   gr.skip(), gr.skip())
            pacer.sent(yielded_at)

        status = req.notice + run.done(req.seed)
        replay = gr.update(visible=True, minimum=1, maximum=len(frames), value=len(frames), step=1,
                           interactive=True)
        yield (live_html(frames[-1], frames, curves), finals_html(run.finals["base"], run.finals.get("sr"), req.seed),
               timeline_html(frames, TIMELINE_STEPS), status, req.seed, replay,
               {"frames": frames, "curves": curves}, gr.skip())

    def compare_samplers(self, prompt: str, guidance_scale: float, steps: float, seed: float,
                         randomize_seed: bool) -> Iterator[tuple[str, str, int]]:
        """The same prompt, seed and step count with each sampler, stepping together (base stage
        only): one column each, with its step and the time its own steps took.

        Yields (columns, status, seed used)."""
        req = self.request(prompt, guidance_scale, steps, seed, randomize_seed, 1, self.defaults.sampler, False)
        columns = [SamplerColumn(name, req.settings.steps) for name in SAMPLERS]
        runs = {c.name: req.pipe.generate(req.prompt, seed=req.seed, guidance_scale=req.settings.guidance_scale,
                                          steps=req.settings.steps, sampler=c.name, sr=False) for c in columns}
        yield samplers_html(columns), f"{req.notice}Samplers side by side: starting (seed {req.seed})…", req.seed
        for _ in range(req.settings.steps):
            for c in columns:
                start = time.perf_counter()
                step = next(runs[c.name])
                c.seconds += time.perf_counter() - start
                c.frame = Frame.of(step)
            status = f"{req.notice}Samplers side by side: step {columns[0].frame.index + 1} of {req.settings.steps}."
            yield samplers_html(columns), status, req.seed
        times = ", ".join(f"{c.name} {c.seconds:.2f} s" for c in columns)
        status = (f"{req.notice}**Samplers done** ({times}), seed {req.seed}, {req.settings.steps} steps each. "
                  "Same noise to start from; ddpm adds fresh noise at every step, ddim and dpm++ are deterministic "
                  "and dpm++ takes larger, second-order steps.")
        yield samplers_html(columns), status, req.seed

    def replay(self, position: float, state: dict | None) -> str:
        """Show step `position` (1 .. all steps of both stages) of the last run again, from the
        frames kept in the session: nothing is recomputed."""
        if not state or not state.get("frames"):
            raise user_error("Nothing to replay yet: press Generate first.", title="No run yet")
        frames = state["frames"]
        k = whole_number("replay step", position, 1, len(frames))
        return live_html(frames[k - 1], frames, state["curves"], "Replay: drag the slider to step through the run.")

    def generate(self, prompt: str, guidance_scale: float, steps: float, seed: float, randomize_seed: bool,
                 sr_steps: float, sampler: str, sr: bool,
                 sr_consistency: bool | None = None) -> Iterator[GenerateOutputs]:
        """The /generate API: stream every denoising step as images, then the final 64 px and 256 px
        images and the timeline.

        Yields (x_t, x0_pred, image_64, image_256, timeline, status, seed used)."""
        req = self.request(prompt, guidance_scale, steps, seed, randomize_seed, sr_steps, sampler, sr, sr_consistency)
        yield None, None, None, None, None, f"{req.notice}Encoding the prompt… (seed {req.seed})", req.seed

        run, timeline, limiter = RunRecord(), Timeline(), FrameLimiter()
        for step in req.steps():
            timeline.add(step)
            run.saw(step)
            if not limiter.ready(step):
                continue
            status = req.notice + describe_step(step, run.sending())
            # gr.skip() leaves an output as it is: the 64 px image is sent once, when its stage ends.
            image_64 = run.finals["base"] if step.stage == "base" and step.is_last else gr.skip()
            yield fresh((display(step.x_t), display(step.x0_pred), image_64, gr.skip(), gr.skip(), status, req.seed))

        x_t, x0 = timeline.items[-2][0], timeline.items[-1][0]
        yield fresh((x_t, x0, run.finals["base"], run.finals.get("sr"), timeline.items, req.notice + run.done(req.seed),
                     req.seed))

    def sweep(self, prompt: str, steps: float, seed: float, randomize_seed: bool,
              sampler: str) -> Iterator[tuple[Image.Image | None, str, int]]:
        """The same prompt and seed at each of SWEEP_SCALES (base stage only, for speed), as a
        labelled grid that fills in as each scale finishes. Yields (grid, status, seed used)."""
        prompt, cut = check_prompt(prompt)
        steps = whole_number("steps", steps, 1, self.limits.max_steps)
        seed = pick_seed(seed, randomize_seed)
        sampler = choice("sampler", sampler, SAMPLERS)
        pipe = self.pipeline.get()
        settings = checked_settings(pipe, steps=steps, sampler=sampler, sr=False)
        notice = truncation_notice(pipe, prompt, cut)
        blank = Image.new("RGB", (SWEEP_TILE, SWEEP_TILE), "white")
        tiles = [blank] * len(SWEEP_SCALES)
        captions = [f"w = {w:g}" for w in SWEEP_SCALES]
        start = time.perf_counter()
        yield fresh((grid(tiles, len(tiles), captions), f"{notice}Guidance sweep: starting (seed {seed})…", seed))
        for k, w in enumerate(SWEEP_SCALES):
            for step in pipe.generate(prompt, seed=seed, guidance_scale=w, steps=settings.steps,
                                      sampler=settings.sampler, sr=False):
                if step.is_last:
                    tiles[k] = display(step.x_prev, SWEEP_TILE)
            status = (f"{notice}Guidance sweep: scale {w:g} done ({k + 1} of {len(SWEEP_SCALES)}), "
                      f"{time.perf_counter() - start:.1f} s so far.")
            yield fresh((grid(tiles, len(tiles), captions), status, seed))
        status = (f"{notice}**Guidance sweep done in {time.perf_counter() - start:.1f} s.** Same prompt and seed "
                  f"({seed}) at each guidance scale w. w = 1 is the text-conditional model alone; a larger w "
                  "pushes each step further from the caption-free prediction towards the prompt, "
                  "until colours saturate.")
        yield fresh((grid(tiles, len(tiles), captions), status, seed))
