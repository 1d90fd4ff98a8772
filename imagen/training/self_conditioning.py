"""Self-conditioning (Chen et al. 2022), its training side; the sampling side is
imagen/self_conditioning.py.

- For half the batch, one extra forward without gradients gives an x0 estimate from x_t alone
  (zeros beside it); the trained forward then sees [x_t, that estimate]. The other half sees
  [x_t, zeros], which is what the first sampling step sees.
- A warm start from a plain base stage: the input convolution's added channels start at zero, so
  the network begins as the plain one's function whatever it is shown (`widen_input`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..self_conditioning import sampling_input

# The share of training examples that get an estimate beside x_t (the paper's 50%).
SELF_CONDITION_PROB = 0.5


def training_input(x_t: torch.Tensor, estimate_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   generator: torch.Generator) -> torch.Tensor:
    """(B, 6, H, W) for the trained forward. `estimate_x0(x_in, rows)` is the network's x0 from
    x_in (the rows of the batch it holds), clipped to the data range; it runs without gradients,
    on the rows drawn to get an estimate, so only they pay for the extra forward."""
    use = torch.rand(x_t.shape[0], generator=generator) < SELF_CONDITION_PROB
    x0_est = torch.zeros_like(x_t)
    rows = use.nonzero().squeeze(1).to(x_t.device)
    if len(rows):
        with torch.no_grad():
            x0_est[rows] = estimate_x0(sampling_input(x_t[rows], None), rows).to(x_t.dtype)
    return torch.cat([x_t, x0_est], dim=1)


def widen_input(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` (a plain base stage's weights) with its input convolution padded by zeros to the
    input channels `own` (a self-conditioned one) has; unchanged if they already match."""
    key = "conv_in.weight"
    if key not in state or key not in own or state[key].shape == own[key].shape:
        return state
    old, new = state[key], own[key]
    if old.shape[0] != new.shape[0] or old.shape[2:] != new.shape[2:] or old.shape[1] > new.shape[1]:
        return state  # not a widening: let the caller report the mismatch
    widened = torch.zeros_like(new, dtype=old.dtype)
    widened[:, :old.shape[1]] = old
    return {**state, key: widened}
