"""Self-conditioning (Chen et al. 2022, "Analog Bits"), its sampling side: the base U-Net sees,
beside x_t, its own estimate of x0 from the previous sampling step, so each step refines the last
one's picture instead of drawing it again from the noise alone. Step i passes step i-1's x0 (the
thresholded one the sampler used) beside x_t. The training side is imagen/training/self_conditioning.py.
"""

from __future__ import annotations

import torch


def sampling_input(x_t: torch.Tensor, x0_prev: torch.Tensor | None) -> torch.Tensor:
    """(B, 6, H, W): x_t beside the previous step's x0, or beside zeros at the first step."""
    return torch.cat([x_t, torch.zeros_like(x_t) if x0_prev is None else x0_prev.to(x_t.dtype)], dim=1)
