"""Exponential moving average of the weights, the copy that gets sampled and shipped.

The decay warms up as (1 + n) / (10 + n) so the average is not dominated by the random
initialisation early in a run, then stays at `decay`.
"""

from __future__ import annotations

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float = 0.9995):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        # One fused update over all tensors: on a GPU a loop would launch a kernel per tensor.
        torch._foreach_lerp_(list(self.model.parameters()),
                             [p.detach().to(e.dtype) for e, p in zip(self.model.parameters(), model.parameters())],
                             1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
