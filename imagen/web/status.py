"""The sentences of the page's status line: what a step did, and what a finished run took."""

from __future__ import annotations

import time

from PIL import Image

from ..images import to_pil
from ..samplers import Step

# The one table of the stages' names, for the status line and the live view's captions and plots.
STAGE_TITLES = {"base": "Base stage (64 px)", "sr": "Super-resolution stage (256 px)"}
STAGE_WORDS = {
    "base": "The model removes a little noise from a random 64 px image each step, guided by your prompt; "
            "right: the clean image it predicts now.",
    "sr": "A second model redraws the 64 px image at 256 px, again from noise, adding detail.",
}


def describe_step(step: Step, elapsed: float) -> str:
    """One plain sentence on what the step did, e.g. 'Base stage (64 px): step 7 of 25 — timestep 640 ...'."""
    return (f"**{STAGE_TITLES[step.stage]}: step {step.index + 1} of {step.total}** — timestep {step.timestep}, "
            f"noise level {step.noise_level:.2f} (σ). {STAGE_WORDS[step.stage]} {elapsed:.1f} s so far.")


def done_sentence(total: float, stage_times: dict[str, float], first_frame: float | None, seed: int) -> str:
    times = f"64 px after {stage_times['base']:.1f} s" + (f", 256 px after {stage_times['sr']:.1f} s"
                                                          if "sr" in stage_times else "")
    first = f"; first frame after {first_frame:.2f} s" if first_frame is not None else ""
    return (f"**Done in {total:.1f} s** ({times}{first}). "
            f"Seed {seed}: the same prompt, seed and settings give the same image.")


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
