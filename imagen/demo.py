"""The logic behind the Gradio demo; `app.py` holds only the layout.

    backend = ImagenDemo(checkpoint_path())       # loads nothing yet
    for frame in backend.generate("red apple", 4.0, 25, 0, False, 20, "dpm++", True):
        x_t, x0_pred, image_64, image_256, timeline, status, seed = frame

Every handler is a generator over `ImagenPipeline.generate`, the same one the CLI drains: it
turns each `Step` into images for the page and a sentence saying what is happening. Bad input
becomes a `gr.Error` with a message a user can act on; the server keeps serving.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
import torch
from PIL import Image

from .config import CONFIG_NAME, MAX_GUIDANCE, CheckpointError, PipelineConfig, Settings
from .images import grid, to_pil
from .samplers import SAMPLERS, Step

if TYPE_CHECKING:  # the pipeline (and diffusers) load on the first request, not with the page
    from .pipeline import ImagenPipeline

DEFAULT_CHECKPOINT = Path("checkpoints/emoji")
MAX_SEED = 2**31 - 1
SWEEP_SCALES = (1.0, 2.0, 4.0, 6.0, 8.0)
DISPLAY_SIZE = 256  # every streamed frame is shown at 256 px, so both stages line up on the page
SWEEP_TILE = 128
TIMELINE_STEPS = 5  # steps kept per stage for the timeline, evenly spaced, last included
MAX_FPS = 25.0  # more frames than this a browser cannot take in over the network anyway
MAX_PROMPT_CHARS = 1000  # far beyond the token limit; keeps a pasted novel from tying up the tokenizer
MAX_UI_STEPS = 100  # the pipeline takes up to 1000; on a CPU 100 already takes a while
MAX_UI_GUIDANCE = MAX_GUIDANCE / 2  # the page's slider ends here; the pipeline takes up to MAX_GUIDANCE

GenerateOutputs = tuple[Image.Image | None, Image.Image | None, Image.Image | None, Image.Image | None,
                        list[tuple[Image.Image, str]] | None, str, int]


def checkpoint_path() -> Path:
    """The checkpoint the demo serves: env IMAGEN_CHECKPOINT, else checkpoints/emoji."""
    return Path(os.environ.get("IMAGEN_CHECKPOINT") or DEFAULT_CHECKPOINT)


def no_weights_message(path: Path) -> str:
    return (f"No trained weights are installed: there is no checkpoint at {path}. Train them with "
            "`python -m imagen.train` and export them with `python -m imagen.export` (see the README), "
            "or set IMAGEN_CHECKPOINT to a checkpoint folder.")


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot serve, judged from its small JSON alone (no weights are
    loaded); None when it looks usable."""
    if not path.exists():
        return no_weights_message(path)
    if not (path / CONFIG_NAME).is_file():
        return f"The checkpoint at {path} cannot be used: it has no {CONFIG_NAME}."
    try:
        PipelineConfig.load(path / CONFIG_NAME)
    except CheckpointError as e:
        return f"The checkpoint at {path} cannot be used: {e}"
    return None


def page_status(path: Path | None = None) -> str:
    """What the status line says when the page opens: an invitation, or why Generate cannot work."""
    problem = checkpoint_problem(checkpoint_path() if path is None else path)
    return "Type a prompt and press Generate." if problem is None else f"**{problem}**"


def read_defaults(path: Path) -> tuple[Settings, bool]:
    """The checkpoint's default settings and whether it has an SR stage, read from its small JSON
    alone, so the page can show them without loading any weights."""
    try:
        config = PipelineConfig.load(path / CONFIG_NAME)
    except CheckpointError:  # no weights yet, or broken: the page still opens, says why, and uses these
        return Settings(), True
    return config.defaults, config.sr is not None


@dataclass(frozen=True)
class Limits:
    """The accepted range of each numeric argument of the page and its API: the sliders' ends."""

    max_guidance: float = MAX_UI_GUIDANCE
    max_steps: int = MAX_UI_STEPS
    max_sr_steps: int = MAX_UI_STEPS

    @classmethod
    def around(cls, defaults: Settings) -> Limits:
        """The usual ends, widened where a checkpoint's defaults lie beyond them, so Generate always
        works at the defaults the page opens with."""
        return cls(max(MAX_UI_GUIDANCE, defaults.guidance_scale), max(MAX_UI_STEPS, defaults.steps),
                   max(MAX_UI_STEPS, defaults.sr_steps))


class SharedPipeline:
    """The pipeline, loaded on first use, once, and shared by every session and thread."""

    def __init__(self, path: Path, device: str = "auto", dtype: str = "bfloat16"):
        self.path, self.device, self.dtype = Path(path), device, dtype
        self._pipe: ImagenPipeline | None = None
        self._lock = threading.Lock()

    def get(self) -> ImagenPipeline:
        if self._pipe is None:
            with self._lock:  # ten first requests at once must not load ten copies
                if self._pipe is None:
                    self._pipe = self._load()
        return self._pipe

    def _load(self) -> ImagenPipeline:
        from .pipeline import ImagenPipeline
        if not self.path.exists():
            # Not cached: weights installed later are picked up without a restart.
            raise user_error(no_weights_message(self.path), title="No trained weights")
        try:
            return ImagenPipeline.from_pretrained(self.path, device=self.device, dtype=self.dtype)
        except CheckpointError as e:
            # The page says so on every load too: one line per request, no traceback, is enough.
            raise user_error(f"The weights at {self.path} could not be loaded: {e}", title="Broken checkpoint") from e


# ---------------------------------------------------------------- input checks


def user_error(message: str, title: str = "Invalid setting") -> gr.Error:
    """A message for the page (or the API caller). Not logged with a traceback: the server is fine."""
    return gr.Error(message, title=title, print_exception=False)


def _shown(value: object) -> str:
    """A value as an error message quotes it: its repr, cut short (a caller may send anything)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_prompt(prompt: object) -> tuple[str, bool]:
    """The prompt to use, and whether it was cut to MAX_PROMPT_CHARS. Empty -> gr.Error."""
    if not isinstance(prompt, str):
        raise user_error(f"prompt must be text, got {_shown(prompt)}.")
    if not prompt.strip():
        raise user_error("The prompt is empty: describe the image you want, e.g. 'red apple, twemoji style'.",
                         title="Empty prompt")
    prompt = " ".join(prompt.split())  # newlines and runs of spaces carry no meaning for the encoder
    return prompt[:MAX_PROMPT_CHARS], len(prompt) > MAX_PROMPT_CHARS


def number(name: str, value: object, low: float, high: float) -> float:
    """A finite number in [low, high]; true/false, text and NaN are refused by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise user_error(f"{name} must be a number from {low:g} to {high:g}, got {_shown(value)}.")
    return float(value)


def whole_number(name: str, value: object, low: int, high: int) -> int:
    """A whole number in [low, high]. Sliders send floats (25.0); 2.5 is refused, not rounded."""
    # The range first: NaN fails it, and a 400-digit integer must not reach float conversion.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high or value % 1:
        raise user_error(f"{name} must be a whole number from {low} to {high}, got {_shown(value)}.")
    return int(value)


def flag(name: str, value: object) -> bool:
    """True or False only: the string "false" is truthy, so it must not pass for False."""
    if not isinstance(value, bool):
        raise user_error(f"{name} must be true or false, got {_shown(value)}.")
    return value


def choice(name: str, value: object, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise user_error(f"{name} must be one of {', '.join(options)}, got {_shown(value)}.")
    return value


def pick_seed(seed: object, randomize: object) -> int:
    """A fresh seed when asked for one; either way the seed used is returned, to be shown."""
    seed = whole_number("seed", seed, 0, MAX_SEED)  # checked even when unused: a typo should not pass
    return secrets.randbelow(MAX_SEED + 1) if flag("randomize_seed", randomize) else seed


def checked_settings(pipe: ImagenPipeline, **overrides: object) -> Settings:
    """The pipeline's own checks, turned into a message on the page."""
    try:
        return pipe.settings(**overrides)
    except ValueError as e:
        raise user_error(str(e).rstrip(".") + ".") from e


def truncation_notice(pipe: ImagenPipeline, prompt: str, cut: bool) -> str:
    if not (cut or pipe.truncated([prompt])[0]):
        return ""
    limit = pipe.text_encoder.max_length
    return (f"Note: your prompt is longer than the text encoder's limit of {limit} tokens, so it was truncated: "
            "the model only read its beginning. ")


# ---------------------------------------------------------------- frames and words


def display(x: torch.Tensor, size: int = DISPLAY_SIZE) -> Image.Image:
    """The first image of a (B, 3, H, W) batch, enlarged with nearest-neighbour so pixels stay visible."""
    image = to_pil(x[:1])[0]
    return image if image.width >= size else image.resize((size, size), Image.NEAREST)


STAGE_NAMES = {"base": "Base stage (64 px)", "sr": "Super-resolution stage (256 px)"}
STAGE_WORDS = {
    "base": "The model removes a little noise from a random 64 px image each step, guided by your prompt; "
            "right: the clean image it predicts now.",
    "sr": "A second model redraws the 64 px image at 256 px, again from noise, adding detail.",
}


def describe_step(step: Step, noise_level: float, elapsed: float) -> str:
    """One plain sentence on what the step did, e.g. 'Base stage (64 px): step 7 of 25 — timestep 640 ...'."""
    return (f"**{STAGE_NAMES[step.stage]}: step {step.index + 1} of {step.total}** — timestep {step.timestep}, "
            f"noise level {noise_level:.2f} (σ). {STAGE_WORDS[step.stage]} {elapsed:.1f} s so far.")


class Timeline:
    """A few evenly spaced steps of each stage (x_t and x0_pred), so memory stays small however
    many steps run."""

    def __init__(self, per_stage: int = TIMELINE_STEPS):
        self.per_stage = per_stage
        self.items: list[tuple[Image.Image, str]] = []

    def keeps(self, step: Step) -> bool:
        n = min(self.per_stage, step.total)
        if n == 1:
            return step.is_last
        return step.index in {round(k * (step.total - 1) / (n - 1)) for k in range(n)}

    def add(self, step: Step) -> None:
        if self.keeps(step):
            where = f"{step.stage} {step.index + 1}/{step.total}"
            self.items += [(display(step.x_t), f"{where} x_t"), (display(step.x0_pred), f"{where} x̂₀")]


def unique(image: Image.Image) -> Image.Image:
    """A copy of `image` that carries a fresh ImageUniqueID, in its EXIF (WebP frames) and as a PNG
    text chunk. Gradio names each file it serves after a hash of the encoded bytes and writes it in
    place: without the tag, an image sent twice (the same seed in two requests, the last frame again
    at the end) is rewritten while a client may still be downloading it."""
    image = image.copy()
    tag = secrets.token_hex(16)
    exif = Image.Exif()
    exif[0xA420] = tag  # ImageUniqueID
    image.info.update(exif=exif.tobytes(), ImageUniqueID=tag)
    return image


def fresh(outputs: tuple) -> tuple:
    """Every image among a handler's outputs (and in a gallery's list) made `unique`."""
    def one(value: object) -> object:
        if isinstance(value, Image.Image):
            return unique(value)
        if isinstance(value, list):
            return [(unique(im), caption) for im, caption in value]
        return value
    return tuple(one(v) for v in outputs)


class FrameLimiter:
    """Lets a frame through at most MAX_FPS times a second, and always a stage's last step. On a
    CPU every step takes longer than that, so every step is shown; a fast GPU would otherwise
    queue frames faster than the page can draw them."""

    def __init__(self, max_fps: float = MAX_FPS):
        self.interval, self.last = 1.0 / max_fps, float("-inf")

    def ready(self, step: Step) -> bool:
        now = time.perf_counter()
        if step.is_last or now - self.last >= self.interval:
            self.last = now
            return True
        return False


# ---------------------------------------------------------------- handlers


class ImagenDemo:
    """The handlers app.py wires to its buttons. Parameter names are the API's argument names.

    app.py passes every argument raw (preprocess=False), so each is checked here, by name, against
    the range the page's own control allows."""

    def __init__(self, path: Path, device: str = "auto", dtype: str = "bfloat16"):
        self.pipeline = SharedPipeline(path, device, dtype)
        self.defaults, self.has_sr = read_defaults(Path(path))
        self.limits = Limits.around(self.defaults)

    def generate(self, prompt: str, guidance_scale: float, steps: float, seed: float, randomize_seed: bool,
                 sr_steps: float, sampler: str, sr: bool) -> Iterator[GenerateOutputs]:
        """Stream every denoising step, then the final 64 px and 256 px images and the timeline.

        Yields (x_t, x0_pred, image_64, image_256, timeline, status, seed used)."""
        lim = self.limits
        prompt, cut = check_prompt(prompt)
        guidance_scale = number("guidance_scale", guidance_scale, 0, lim.max_guidance)
        steps = whole_number("steps", steps, 1, lim.max_steps)
        seed = pick_seed(seed, randomize_seed)
        sr_steps = whole_number("sr_steps", sr_steps, 1, lim.max_sr_steps)
        sampler = choice("sampler", sampler, SAMPLERS)
        sr = flag("sr", sr)
        pipe = self.pipeline.get()
        settings = checked_settings(pipe, guidance_scale=guidance_scale, steps=steps, sampler=sampler, sr=sr,
                                    sr_steps=sr_steps)
        notice = truncation_notice(pipe, prompt, cut)
        if notice:
            gr.Warning(notice)
        # Clear the previous run's images at once, so nothing stale sits beside the new frames.
        yield None, None, None, None, None, f"{notice}Encoding the prompt… (seed {seed})", seed

        start = time.perf_counter()
        first_frame = None
        finals: dict[str, Image.Image] = {}
        stage_times: dict[str, float] = {}
        timeline, limiter = Timeline(), FrameLimiter()
        for step in pipe.generate(prompt, seed=seed, guidance_scale=settings.guidance_scale, steps=settings.steps,
                                  sampler=settings.sampler, sr=settings.sr, sr_steps=settings.sr_steps):
            timeline.add(step)
            if step.is_last:
                finals[step.stage] = to_pil(step.x_prev[:1])[0]
                stage_times[step.stage] = time.perf_counter() - start
            if not limiter.ready(step):
                continue
            elapsed = time.perf_counter() - start
            first_frame = elapsed if first_frame is None else first_frame
            status = notice + describe_step(step, pipe.noise_level(step.stage, step.timestep), elapsed)
            # gr.skip() leaves an output as it is: the 64 px image is sent once, when its stage ends.
            image_64 = finals["base"] if step.stage == "base" and step.is_last else gr.skip()
            yield fresh((display(step.x_t), display(step.x0_pred), image_64, gr.skip(), gr.skip(), status, seed))

        total = time.perf_counter() - start
        times = f"64 px after {stage_times['base']:.1f} s" + (f", 256 px after {stage_times['sr']:.1f} s"
                                                              if "sr" in stage_times else "")
        status = (f"{notice}**Done in {total:.1f} s** ({times}; first frame after {first_frame:.2f} s). "
                  f"Seed {seed}: the same prompt, seed and settings give the same image.")
        x_t, x0 = timeline.items[-2][0], timeline.items[-1][0]
        yield fresh((x_t, x0, finals["base"], finals.get("sr"), timeline.items, status, seed))

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
