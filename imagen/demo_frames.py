"""What the demo sends besides the page's inline frames: the /generate API's images (enlarged
frames, the timeline gallery, files that never repeat), the pacing of frames, and the sentences
of the status line."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

import torch
from PIL import Image

from .images import to_pil
from .samplers import Step

if TYPE_CHECKING:
    from .pipeline import ImagenPipeline

DISPLAY_SIZE = 256  # the API's frames are enlarged to 256 px, so both stages line up
TIMELINE_STEPS = 5  # steps kept per stage for the timeline, evenly spaced, last included
MAX_FPS = 25.0  # the API's frame limit; the page paces itself by what the server can send
SCHEDULE_POINTS = 64  # points of each stage's noise-schedule curve on the page


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


def schedule_curve(pipe: ImagenPipeline, stage: str, points: int = SCHEDULE_POINTS) -> list[tuple[int, float]]:
    """(t, sigma_t) along a stage's noise schedule, from t = T - 1 down to 0: the page's plot."""
    last = pipe.num_timesteps(stage) - 1
    ts = sorted({round(last * k / (points - 1)) for k in range(points)}, reverse=True)
    return [(t, pipe.noise_level(stage, t)) for t in ts]


def done_sentence(total: float, stage_times: dict[str, float], first_frame: float | None, seed: int) -> str:
    times = f"64 px after {stage_times['base']:.1f} s" + (f", 256 px after {stage_times['sr']:.1f} s"
                                                          if "sr" in stage_times else "")
    first = f"; first frame after {first_frame:.2f} s" if first_frame is not None else ""
    return (f"**Done in {total:.1f} s** ({times}{first}). "
            f"Seed {seed}: the same prompt, seed and settings give the same image.")


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


class FramePacer:
    """The page's frames, paced by how fast they leave the server: while the caller is sending a
    frame the model waits, so a frame is skipped when the last one took longer to send than the
    model has computed since (frames never take more than half the time). A stage's last step is
    always sent. On a CPU at the defaults a step takes far longer than a send: every step is shown."""

    def __init__(self) -> None:
        self.resumed, self.send_cost = float("-inf"), 0.0

    def ready(self, step: Step) -> bool:
        return step.is_last or time.perf_counter() - self.resumed >= self.send_cost

    def sent(self, yielded_at: float) -> None:
        """Call when the generator resumes after yielding at `yielded_at`."""
        self.resumed = time.perf_counter()
        self.send_cost = self.resumed - yielded_at


class RunRecord:
    """What a handler tells at the end of a run: each stage's final image and when it finished, and
    when the first frame went out."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.finals: dict[str, Image.Image] = {}
        self.stage_times: dict[str, float] = {}
        self.first_frame: float | None = None

    def saw(self, step: Step) -> None:
        if step.is_last:
            self.finals[step.stage] = to_pil(step.x_prev[:1])[0]
            self.stage_times[step.stage] = time.perf_counter() - self.start

    def sending(self) -> float:
        """Seconds since the start, noted as the first frame's time if it is the first."""
        elapsed = time.perf_counter() - self.start
        self.first_frame = elapsed if self.first_frame is None else self.first_frame
        return elapsed

    def done(self, seed: int) -> str:
        return done_sentence(time.perf_counter() - self.start, self.stage_times, self.first_frame, seed)
