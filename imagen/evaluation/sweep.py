"""Which settings an evaluation generates, and generating the evaluation images for one setting.

Each sweep varies one setting around a centre (the checkpoint's defaults), so a guidance sweep, a
quality-per-step curve per sampler and an SR sweep cost their sum, not their product.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..config import Settings
from ..pipeline import ImagenPipeline
from .metrics import diversity

if TYPE_CHECKING:
    from ..gan.sampler import GanSampler
    from .image_encoder import ImageEncoder

DEFAULT_GUIDANCE = (1.0, 2.0, 4.0, 6.0, 8.0)


def centre_and_values(default: object, values: list | None) -> tuple[object, list]:
    """The distinct values to sweep, and the centre that other sweeps hold fixed: the default when
    it is among them, else the nearest number (or the first name)."""
    values = list(dict.fromkeys(values)) if values else [default]
    if default in values:
        return default, values
    if isinstance(default, (int, float)):
        return min(values, key=lambda v: abs(v - default)), values
    return values[0], values


def base_settings(defaults: Settings, guidance: list[float] | None, steps: list[int] | None,
                  samplers: list[str] | None, thresholds: list[float] | None = None,
                  guidance_min_ts: list[int] | None = None) -> tuple[dict, list[dict]]:
    """The centre, and every base-stage setting to generate: the guidance sweep at the centre's steps
    and sampler, a step sweep (a quality-per-step curve) for each sampler at the centre's guidance,
    then sweeps of the dynamic-thresholding percentile and of the lowest guided timestep at the centre."""
    w, guidance = centre_and_values(defaults.guidance_scale,
                                    guidance or sorted({*DEFAULT_GUIDANCE, defaults.guidance_scale}))
    n, steps = centre_and_values(defaults.steps, steps)
    sampler, samplers = centre_and_values(defaults.sampler, samplers)
    p, thresholds = centre_and_values(defaults.threshold, thresholds)
    min_t, guidance_min_ts = centre_and_values(defaults.guidance_min_t, guidance_min_ts)

    def setting(w: float, n: int, sampler: str, p: float, min_t: int = min_t) -> dict:
        return {"guidance_scale": w, "steps": n, "sampler": sampler, "threshold": p, "guidance_min_t": min_t}

    settings = [setting(g, n, sampler, p) for g in guidance]
    settings += [setting(w, s, m, p) for m in samplers for s in steps]
    settings += [setting(w, n, sampler, q) for q in thresholds]
    settings += [setting(w, n, sampler, p, m) for m in guidance_min_ts]
    return setting(w, n, sampler, p), _distinct(settings)


def sr_settings(defaults: Settings, steps: list[int] | None, guidance: list[float] | None,
                noise_levels: list[int] | None = None,
                consistency: list[bool] | None = None) -> tuple[dict, list[dict]]:
    """The SR centre, and every SR setting: a guidance sweep at the centre's steps and noise level,
    a step sweep at its guidance, a sweep of the augmentation noise level the low-res input
    is corrupted to (lower keeps more of the 64 px image's content), and low-frequency
    consistency on and off."""
    n, steps = centre_and_values(defaults.sr_steps, steps)
    w, guidance = centre_and_values(defaults.sr_guidance_scale, guidance)
    a, noise_levels = centre_and_values(defaults.sr_noise_level, noise_levels)
    c, consistency = centre_and_values(defaults.sr_consistency, consistency)

    def setting(n: int, w: float, a: int, c: bool) -> dict:
        return {"sr_steps": n, "sr_guidance_scale": w, "sr_noise_level": a, "sr_consistency": c}

    settings = [setting(n, g, a, c) for g in guidance]
    settings += [setting(k, w, a, c) for k in steps]
    settings += [setting(n, w, level, c) for level in noise_levels]
    settings += [setting(n, w, a, on) for on in consistency]
    return setting(n, w, a, c), _distinct(settings)


def _distinct(settings: list[dict]) -> list[dict]:
    return list({tuple(s.items()): s for s in settings}.values())


def generate_64(pipe: ImagenPipeline, prompts: list[str], setting: dict, seed: int, batch_size: int,
                on_step: Callable[[], object]) -> tuple[torch.Tensor, float]:
    """The base stage's images (N, 3, 64, 64) in [-1, 1] for `setting`, image i from seed + i,
    and the seconds taken per image. `on_step` is called after every denoising step (a progress bar)."""
    start, outputs = time.time(), []
    for b in range(0, len(prompts), batch_size):
        for step in pipe.generate(prompts[b:b + batch_size], seed=seed + b, sr=False, **setting):
            on_step()
            if step.is_last:
                outputs.append(step.x_prev.float().cpu())
    return torch.cat(outputs), (time.time() - start) / len(prompts)


def super_resolve(pipe: ImagenPipeline, images_64: torch.Tensor, prompts: list[str], setting: dict, seed: int,
                  batch_size: int, on_step: Callable[[], object]) -> tuple[torch.Tensor, float]:
    """The SR stage alone on given 64 px images: (N, 3, 256, 256) in [-1, 1], and seconds per image."""
    start, outputs = time.time(), []
    for b in range(0, len(prompts), batch_size):
        for step in pipe.super_resolve(images_64[b:b + batch_size], prompts[b:b + batch_size], seed=seed + b,
                                       **setting):
            on_step()
            if step.is_last:
                outputs.append(step.x_prev.float().clamp(-1, 1).cpu())
    return torch.cat(outputs), (time.time() - start) / len(prompts)


def bicubic(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (B, 3, H, W) in [-1, 1] with bicubic interpolation (antialiased when shrinking)."""
    shrink = size < images.shape[-1]
    return F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False,
                         antialias=shrink).clamp(-1, 1)


def draw_gan(gan: GanSampler, prompts: list[str], seed: int, batch_size: int) -> tuple[torch.Tensor, float]:
    """The GAN's images (N, 3, 64, 64) in [-1, 1], image i from seed + i, and the seconds per image."""
    from ..gan.sampler import noise
    start, outputs = time.time(), []
    for b in range(0, len(prompts), batch_size):
        batch = prompts[b:b + batch_size]
        outputs.append(gan.draw(batch, noise(gan.generator.config.z_dim, seed + b, len(batch))))
    return torch.cat(outputs), (time.time() - start) / len(prompts)


def seed_diversity(encoder: ImageEncoder, draw: Callable[[list[str], int], torch.Tensor], prompts: list[str],
                   seed: int, seeds: int) -> float:
    """metrics.diversity of each prompt drawn from `seeds` seeds (`draw(prompts, seed)`: image i from seed + i)."""
    images = torch.cat([draw([p] * seeds, seed) for p in prompts])  # prompt k's images together
    return round(diversity(encoder.encode(images)[0].view(len(prompts), seeds, -1)), 4)  # the judge's features
