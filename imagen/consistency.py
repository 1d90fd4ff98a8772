"""Low-frequency consistency for the SR stage: the 256 px image keeps the 64 px image it came from.

Range-null-space decomposition (DDNM, Wang et al. 2023) with A = 4x4 average pooling, the
256 -> 64 px downsampler: every step's predicted x0 is replaced by

    x0 <- x0 + A^+ (y - A x0)

so A x0 stays at y and the network only decides what y cannot hold (edges, texture). ILVR
(Choi et al. 2021) conditions on the same low band, on x_t instead of x0. Without it the SR
stage drifts in colour and shape from its input; with it, what a person watched form at 64 px
is what the 256 px image shows, sharpened.

A^+ of average pooling is nearest-neighbour upsampling, but applied at the last step it leaves
4x4 blocks along edges. Bicubic upsampling spreads the same correction smoothly; repeated at
every step it still holds A x0 to within about 0.005 of y on average (in [-1, 1]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """A: the mean of every factor x factor block, (B, C, H, W) -> (B, C, H/factor, W/factor)."""
    return F.avg_pool2d(x, factor)


def project(x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x0 (B, C, H, W) with its low band moved onto y's (B, C, H/f, W/f), so downsample(result) ~= y."""
    factor = x0.shape[-1] // y.shape[-1]
    if x0.shape[-1] != factor * y.shape[-1] or x0.shape[-2] != factor * y.shape[-2]:
        raise ValueError(f"cannot project a {tuple(x0.shape[-2:])} image onto a {tuple(y.shape[-2:])} one")
    residual = y.to(x0.dtype) - downsample(x0, factor)
    return x0 + F.interpolate(residual, scale_factor=factor, mode="bicubic", align_corners=False)
