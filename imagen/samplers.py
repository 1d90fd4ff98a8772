"""Sampling loops: diffusers' schedulers stepped by a generator that yields every step.

The loop owns the diffusion math (x0 from the network output, dynamic thresholding) and hands
the scheduler the thresholded x0 directly (`prediction_type="sample"`), so every scheduler
continues from the same clipped estimate, as Imagen does, and the predicted x0 that a viewer
sees is exactly the one the sampler used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .diffusion import dynamic_threshold, predict_x0, randn_like

SAMPLERS = ("dpm++", "ddim", "ddpm")

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
"""(x_t (B, C, H, W), t (B,), the previous step's x0 or None at the first) -> the network's output
(eps or v), guidance already applied. Only a self-conditioned stage reads the previous x0."""

Generators = torch.Generator | list[torch.Generator] | None


@dataclass
class Step:
    """One denoising step, as the app, the CLI and the tests see it."""

    stage: str  # "base" or "sr"
    index: int  # 0 .. total - 1
    total: int
    timestep: int  # t
    x_t: torch.Tensor  # (B, 3, H, W) the noisy sample the network saw at t (pure noise at the first step)
    x0_pred: torch.Tensor  # (B, 3, H, W) the clean image predicted from x_t, thresholded
    x_prev: torch.Tensor  # (B, 3, H, W) the sample after the step; at the last step, the stage's output
    noise_level: float  # sqrt(1 - alpha_bar_t): the standard deviation of the noise in x_t (1 pure noise, 0 clean)
    # Opt-in instruments of the base stage (ImagenPipeline.generate(attention=..., guidance_parts=...)):
    attention: torch.Tensor | None = None  # (B, L, 64, 64) share of each pixel's attention on each text token
    x0_uncond: torch.Tensor | None = None  # (B, 3, H, W) the x0 the caption-free prediction implies
    x0_cond: torch.Tensor | None = None  # (B, 3, H, W) the x0 the captioned prediction implies

    @property
    def is_last(self) -> bool:
        return self.index == self.total - 1


def evenly_spaced(total: int, n: int) -> list[int]:
    """n step indices of 0 .. total - 1, evenly spaced, the first and the last included (the last
    alone when n is 1): the steps a timeline or a figure shows."""
    n = min(n, total)
    if n <= 1:
        return [total - 1]
    return sorted({round(k * (total - 1) / (n - 1)) for k in range(n)})


def make_scheduler(name: str, betas: torch.Tensor) -> SchedulerMixin:
    """A diffusers scheduler for `name` on the training schedule `betas`.

    "dpm++": DPM-Solver++ 2M (Lu et al. 2022), deterministic, good in 10-25 steps.
    "ddim": DDIM (Song et al. 2021), deterministic (eta = 0).
    "ddpm": ancestral sampling (Ho et al. 2020), fresh noise every step; wants more steps.
    """
    common = dict(num_train_timesteps=len(betas), trained_betas=betas.numpy(),
                  prediction_type="sample", timestep_spacing="trailing")
    if name == "dpm++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           lower_order_final=True, final_sigmas_type="zero")
    if name == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    if name == "ddpm":
        return DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small")
    raise ValueError(f"unknown sampler {name!r}; expected one of {SAMPLERS}")


def sample_loop(
    denoiser: Denoiser,
    x_T: torch.Tensor,
    *,
    scheduler: SchedulerMixin,
    steps: int,
    alpha_bar: torch.Tensor,
    prediction_type: str,
    stage: str,
    threshold: float = 0.95,
    generator: Generators = None,
    constrain: Callable[[torch.Tensor], torch.Tensor] | None = None,
    start: int = 0,
) -> Iterator[Step]:
    """Denoise x_T (B, C, H, W) in `steps` steps, yielding a `Step` after each.

    `constrain` maps every predicted x0 before the scheduler sees it (the SR stage's low-frequency
    consistency, `consistency.project`). `start` skips the schedule's first steps: x_T is then the
    sample at step `start`'s timestep (`ImagenPipeline.restore`)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    scheduler.set_timesteps(steps, device=x_T.device)
    x_t, x0_pred = x_T, None
    kwargs = {"generator": generator} if isinstance(scheduler, DDPMScheduler) else {}
    for i, t in list(enumerate(scheduler.timesteps))[start:]:
        t_batch = t.expand(x_t.shape[0]).to(x_t.device)
        model_out = denoiser(x_t, t_batch, x0_pred).float()
        x0_pred = dynamic_threshold(predict_x0(x_t, t_batch, model_out, alpha_bar, prediction_type), threshold)
        if constrain is not None:
            x0_pred = constrain(x0_pred)
        x_prev = scheduler.step(x0_pred, t, x_t, **kwargs).prev_sample
        sigma = float((1 - alpha_bar[int(t)]).clamp(min=0).sqrt())
        yield Step(stage, i, len(scheduler.timesteps), int(t), x_t, x0_pred, x_prev, sigma)
        x_t = x_prev


def schedule_timesteps(scheduler: SchedulerMixin, steps: int) -> list[int]:
    """The timesteps `sample_loop` visits in `steps` steps, first to last."""
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def initial_noise(shape: tuple[int, ...], generator: Generators, device: torch.device) -> torch.Tensor:
    """x_T ~ N(0, I); with one generator per image, each image's noise is its own."""
    return randn_like(torch.empty(shape, device=device), generator)
