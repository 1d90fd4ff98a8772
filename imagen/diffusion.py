"""Gaussian diffusion in the paper's terms: schedules, q_sample, predictions, the loss, and
Imagen's three tricks (classifier-free guidance, dynamic thresholding, noise augmentation).

Everything here is a pure function of tensors. Sampling loops live in `samplers.py` and use
diffusers' schedulers built from the same betas, so training and sampling share one schedule.
Images are in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PREDICTION_TYPES = ("epsilon", "v_prediction")
LOSS_WEIGHTINGS = ("none", "min_snr")
SCHEDULES = ("cosine", "linear")


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2). Imagen's base schedule."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
             for i in range(num_timesteps)]
    return torch.tensor(betas, dtype=torch.float64)


def linear_betas(num_timesteps: int) -> torch.Tensor:
    """Ho et al. 2020, rescaled so any T spans the same noise range as T=1000."""
    scale = 1000 / num_timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)


def make_betas(schedule: str, num_timesteps: int = 1000) -> torch.Tensor:
    if schedule == "cosine":
        return cosine_betas(num_timesteps)
    if schedule == "linear":
        return linear_betas(num_timesteps)
    raise ValueError(f"unknown noise schedule {schedule!r}; expected one of {SCHEDULES}")


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), float32."""
    return torch.cumprod(1 - betas, dim=0).float()


def _at(alpha_bar: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """alpha_bar[t] shaped (B, 1, 1, 1) to broadcast against an image batch."""
    return alpha_bar.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Diffuse x0 to step t: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    a = _at(alpha_bar, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def v_target(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Salimans & Ho 2022: v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0."""
    a = _at(alpha_bar, t, x0)
    return a.sqrt() * eps - (1 - a).sqrt() * x0


def predict_x0(x_t: torch.Tensor, t: torch.Tensor, model_out: torch.Tensor, alpha_bar: torch.Tensor,
               prediction_type: str) -> torch.Tensor:
    """The clean image implied by the network's output at step t."""
    a = _at(alpha_bar, t, x_t)
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * model_out) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * model_out
    raise ValueError(f"unknown prediction type {prediction_type!r}; expected one of {PREDICTION_TYPES}")


def snr(t: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t: alpha_bar_t / (1 - alpha_bar_t)."""
    a = alpha_bar.to(t.device)[t].double()
    return (a / (1 - a)).float()


def shifted_timesteps(u: torch.Tensor, alpha_bar: torch.Tensor, shift: float) -> torch.Tensor:
    """Training timesteps drawn as if the schedule were shifted toward noise (Hoogeboom et al.
    2023, "simple diffusion"): uniform u in [0, 1) -> the first t whose log-SNR is at most the
    uniform draw's log-SNR minus 2 log(shift). shift = 1 is the uniform draw; shift = 2 moves the
    median t of the cosine schedule from 500 to about 700. An emoji is mostly flat colour on white,
    so its outline survives far into the schedule and the uniform draw spends few samples on the
    high-noise steps where the outline is laid out."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    num_timesteps = len(alpha_bar)
    t_uniform = (u * num_timesteps).long().clamp(0, num_timesteps - 1)
    a = alpha_bar.double().cpu()
    log_snr = torch.log(a) - torch.log1p(-a)  # falls with t
    target = log_snr[t_uniform] - 2 * math.log(shift)
    return torch.searchsorted(-log_snr, -target).clamp(max=num_timesteps - 1)


def min_snr_weight(t: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma (Hang et al. 2023): weight each t so that the loss, read as an x0 loss, is
    weighted by min(SNR_t, gamma). Low-noise steps, which the simple loss overweights, stop
    dominating the gradient. The eps loss is SNR times the x0 loss, the v loss SNR + 1 times."""
    s = snr(t, alpha_bar)
    return s.clamp(max=gamma) / (s + 1 if prediction_type == "v_prediction" else s)


def training_loss(model_out: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                  alpha_bar: torch.Tensor, prediction_type: str, weighting: str = "none",
                  gamma: float = 5.0) -> torch.Tensor:
    """Mean squared error against the eps or v target (the "simple" loss of Ho et al.), optionally
    weighted per sample by min-SNR-gamma."""
    if prediction_type == "epsilon":
        target = eps
    elif prediction_type == "v_prediction":
        target = v_target(x0, t, eps, alpha_bar)
    else:
        raise ValueError(f"unknown prediction type {prediction_type!r}; expected one of {PREDICTION_TYPES}")
    if weighting == "none":
        return F.mse_loss(model_out.float(), target.float())
    if weighting != "min_snr":
        raise ValueError(f"unknown loss weighting {weighting!r}; expected one of {LOSS_WEIGHTINGS}")
    per_sample = (model_out.float() - target.float()).square().flatten(1).mean(1)  # (B,)
    return (per_sample * min_snr_weight(t, alpha_bar, prediction_type, gamma)).mean()


def classifier_free_guidance(out_uncond: torch.Tensor, out_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Ho & Salimans 2022: out = out_uncond + w (out_cond - out_uncond). w = 1 is the conditional output."""
    return out_uncond + guidance_scale * (out_cond - out_uncond)


def dynamic_threshold(x0: torch.Tensor, percentile: float = 0.95, max_value: float = 1.5) -> torch.Tensor:
    """Imagen's dynamic thresholding: s = the percentile of |x0| per image (at least 1, at most
    `max_value`, as DeepFloyd IF bounds it); clip x0 to [-s, s] and divide by s, so large
    guidance weights do not saturate. A percentile of 1.0 with max_value 1.0 is static clipping.
    """
    if not 0 < percentile <= 1:
        raise ValueError(f"thresholding percentile must be in (0, 1], got {percentile}")
    flat = x0.float().abs().reshape(x0.shape[0], -1)
    # kthvalue rather than torch.quantile: 10x faster on a 256 px image, same value up to interpolation.
    k = min(max(math.ceil(percentile * flat.shape[1]), 1), flat.shape[1])
    s = flat.kthvalue(k, dim=1).values.clamp(min=1.0, max=max_value)
    s = s.view(-1, *([1] * (x0.dim() - 1)))
    return (x0.float().clamp(-s, s) / s).to(x0.dtype)


def upsample(low_res: torch.Tensor, size: int) -> torch.Tensor:
    """The SR stage's view of the low-res image: bilinear upsampling to the output size."""
    return F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)


def noise_augment(low_res: torch.Tensor, aug_t: torch.Tensor, alpha_bar: torch.Tensor,
                  generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
    """Noise conditioning augmentation: corrupt the SR stage's low-res input to level aug_t with
    the forward process. The SR U-Net is told aug_t, so it learns to trust a clean input and to
    repair a flawed one; sampling uses a fixed small level."""
    eps = randn_like(low_res, generator)
    return q_sample(low_res, aug_t, eps, alpha_bar)


def randn_like(x: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """Gaussian noise shaped like x; a list of generators draws each batch row from its own."""
    if isinstance(generator, list):
        return torch.cat([torch.randn(x[:1].shape, generator=g, device=g.device, dtype=torch.float32)
                          for g in generator]).to(x.device, x.dtype)
    return torch.randn(x.shape, generator=generator, dtype=torch.float32,
                       device=generator.device if generator is not None else x.device).to(x.device, x.dtype)
