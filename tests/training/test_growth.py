from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel

from imagen.pipeline import load_unet
from imagen.training.growth import load_deepened
from imagen.training.trainer import load_stage_weights
from imagen.unets import build_unet, unet_config, unet_forward

ROOT = Path(__file__).resolve().parents[2]


def inputs(batch=2, channels=3, size=64):
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(batch, 32, dtype=torch.bool)
    mask[:, 12:] = False
    return (torch.randn(batch, channels, size, size, generator=g), torch.tensor([80, 900][:batch]),
            torch.randn(batch, 32, 384, generator=g), mask)


def deeper(config: dict, layers: tuple[int, ...]) -> UNet2DConditionModel:
    return UNet2DConditionModel(**{**config, "layers_per_block": layers})


def test_a_deepened_unet_computes_the_same_function_and_its_new_layers_learn():
    torch.manual_seed(0)
    small = build_unet("base", "tiny", 384)
    for p in small.parameters():  # no zero-initialised part that would hide a wrong mapping
        p.data += 0.05 * torch.randn_like(p)
    big = deeper(unet_config("base", "tiny", 384), (1, 2, 3))
    load_deepened(big, small.state_dict(), dict(small.config))
    assert sum(p.numel() for p in big.parameters()) > sum(p.numel() for p in small.parameters())
    x = inputs()
    with torch.no_grad():
        a, b = unet_forward(small, *x), unet_forward(big, *x)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()

    added = big.up_blocks[0].resnets[1].conv2.weight  # zero at the start: the identity
    assert added.abs().max() == 0
    unet_forward(big, *x).square().mean().backward()
    assert added.grad.abs().max() > 0  # the new layer is trained from the identity


def test_only_a_deeper_unet_of_the_same_widths_can_be_grown_into():
    small = build_unet("base", "tiny", 384)
    config = unet_config("base", "tiny", 384)
    with pytest.raises(ValueError, match="layers per level"):
        load_deepened(deeper(config, (1, 1, 1)), build_unet("base", "tiny", 384).state_dict(),
                      {**dict(small.config), "layers_per_block": 2})
    wider = UNet2DConditionModel(**{**config, "block_out_channels": (8, 16, 32), "layers_per_block": (1, 2, 2)})
    with pytest.raises(ValueError, match="block_out_channels"):
        load_deepened(wider, small.state_dict(), dict(small.config))


def test_the_shipped_base_warm_starts_a_cpu_deep_run_with_its_function():
    shipped = load_unet(ROOT / "checkpoints/emoji/base").float()
    deep = build_unet("base", "cpu-deep", 384)
    load_stage_weights(deep, ROOT / "checkpoints/emoji", "base")
    x = inputs()
    with torch.no_grad():
        a, b = unet_forward(shipped, *x), unet_forward(deep, *x)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert a.abs().mean() > 0.1  # a trained network, not zeros
