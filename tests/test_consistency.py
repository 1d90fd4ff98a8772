"""Low-frequency consistency: the SR stage's x0 keeps its 64 px input's low band."""

from __future__ import annotations

import pytest
import torch

from imagen.consistency import downsample, project


def test_projection_moves_the_low_band_onto_the_input_and_converges():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 256, 256, generator=g) * 2 - 1
    y = torch.nn.functional.interpolate(torch.rand(2, 3, 16, 16, generator=g) * 2 - 1, size=64, mode="bilinear")
    before = (downsample(x0, 4) - y).abs().mean()
    once = project(x0, y)
    assert (downsample(once, 4) - y).abs().mean() < 0.5 * before
    for _ in range(9):  # once per sampling step
        once = project(once, y)
    assert (downsample(once, 4) - y).abs().mean() < 0.01


def test_what_the_low_band_cannot_hold_is_left_alone():
    # a 2-pixel checkerboard averages to zero over every 4x4 block: it is all high band
    checker = (torch.arange(256).view(1, -1) + torch.arange(256).view(-1, 1)) % 2 * 2.0 - 1
    x0 = checker.expand(1, 3, 256, 256).clone()
    assert torch.allclose(project(x0, torch.zeros(1, 3, 64, 64)), x0, atol=1e-6)


def test_mismatched_sizes_are_a_clear_error():
    with pytest.raises(ValueError, match="cannot project"):
        project(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 60, 60))
