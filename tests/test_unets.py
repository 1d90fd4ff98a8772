import pytest
import torch

from imagen.unets import BASE_PRESETS, SR_PRESETS, build_unet, unet_forward


def test_base_and_sr_shapes():
    base, sr = build_unet("base", "tiny", 384), build_unet("sr", "tiny", 384)
    embeds, mask = torch.randn(2, 32, 384), torch.ones(2, 32, dtype=torch.bool)
    t = torch.tensor([10, 900])
    assert unet_forward(base, torch.randn(2, 3, 64, 64), t, embeds, mask).shape == (2, 3, 64, 64)
    # SR: x_t beside the upsampled low-res image, plus the augmentation level; any crop size works
    for size in (64, 256):
        out = unet_forward(sr, torch.randn(2, 6, size, size), t, embeds, mask, class_labels=torch.tensor([0, 300]))
        assert out.shape == (2, 3, size, size)


def test_text_and_augmentation_level_change_the_output():
    torch.manual_seed(0)
    sr = build_unet("sr", "tiny", 384)
    x, t = torch.randn(1, 6, 64, 64), torch.tensor([500])
    embeds, mask = torch.randn(1, 32, 384), torch.ones(1, 32, dtype=torch.bool)
    with torch.no_grad():
        a = unet_forward(sr, x, t, embeds, mask, torch.tensor([0]))
        b = unet_forward(sr, x, t, embeds, mask, torch.tensor([300]))
        c = unet_forward(sr, x, t, torch.randn(1, 32, 384), mask, torch.tensor([0]))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_the_pooled_text_path_can_read_other_embeddings_than_cross_attention():
    """pooled_embeds goes to add_embedding for that call alone: the caption's own embeddings give the plain
    output bit for bit, other ones change it, and no hook stays behind."""
    torch.manual_seed(0)
    base = build_unet("base", "tiny", 384).eval()
    x, t = torch.randn(2, 3, 64, 64), torch.tensor([500, 500])
    a, b = torch.randn(2, 32, 384), torch.randn(2, 32, 384)
    mask = torch.ones(2, 32, dtype=torch.bool)
    seen = []
    base.add_embedding.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        plain = unet_forward(base, x, t, a, mask)
        same = unet_forward(base, x, t, a, mask, pooled_embeds=a)
        other = unet_forward(base, x, t, a, mask, pooled_embeds=b)
        after = unet_forward(base, x, t, a, mask)
    assert torch.equal(plain, same) and torch.equal(plain, after)
    assert not torch.allclose(plain, other)
    assert torch.equal(seen[2], b) and torch.equal(seen[3], a)  # the pooled path read b once, then a again
    assert len(base.add_embedding._forward_pre_hooks) == 0


@pytest.mark.parametrize("stage,presets,low,high", [("base", BASE_PRESETS, 5.5e6, 7e6), ("sr", SR_PRESETS, 5e6, 7e6)])
def test_cpu_presets_are_about_six_million_parameters(stage, presets, low, high):
    n = sum(p.numel() for p in build_unet(stage, "cpu", 384).parameters())
    assert low < n < high


def test_unknown_stage_or_preset():
    with pytest.raises(ValueError, match="stage"):
        build_unet("refiner", "cpu", 384)
    with pytest.raises(ValueError, match="preset"):
        build_unet("base", "huge", 384)
