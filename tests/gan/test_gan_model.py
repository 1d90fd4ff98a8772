"""The GAN's parts on tiny configs: per-sample kernels, the multi-scale outputs, the discriminator's
text projection, the matching-aware rotation, R1 and the augmentation."""

import pytest
import torch

from imagen.gan.discriminator import Discriminator, pyramid
from imagen.gan.generator import GAN_PRESETS, Generator, GeneratorConfig
from imagen.gan.layers import AdaptiveConv
from imagen.gan.losses import diff_augment, discriminator_loss, r1_penalty, rotated


def captions(b: int = 2, dim: int = 384) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 6, dim, generator=g), torch.ones(b, 6, dtype=torch.bool)


def test_the_kernel_bank_mixes_per_sample_so_two_captions_give_two_kernels():
    torch.manual_seed(0)
    gen = Generator(GAN_PRESETS["tiny"])
    text, mask = captions()
    z = torch.zeros(1, gen.config.z_dim).expand(2, -1)  # the same noise for both
    w = gen.style(z, text, mask)
    kernels = gen.first.kernel(w)  # (2, c_out, c_in, 3, 3)
    assert not torch.allclose(kernels[0], kernels[1])
    # and each is a convex mix of the bank: the mix weights are a softmax
    mix = gen.first.select(w).softmax(-1)
    assert torch.allclose(kernels[1], torch.einsum("k,koihw->oihw", mix[1], gen.first.bank), atol=1e-6)
    # the grouped convolution gives sample i exactly what its own kernel gives it alone
    conv, x = gen.first, torch.randn(2, 16, 4, 4)
    both = conv(x, w)
    alone = torch.cat([conv(x[i:i + 1], w[i:i + 1]) for i in range(2)])
    assert torch.allclose(both, alone, atol=1e-5)


def test_one_kernel_turns_selection_off():
    conv = AdaptiveConv(4, 4, 8, kernels=1)
    assert conv.select is None
    w = torch.randn(3, 8)
    assert torch.equal(conv.kernel(w)[0], conv.kernel(w)[2])


@pytest.mark.parametrize("kernels,demodulate", [(4, True), (1, True), (4, False)])
def test_modulating_the_activations_gives_the_kernels_numbers(kernels, demodulate):
    """Each layer scales its kernels or its activations, whichever costs less (layers.AdaptiveConv):
    the outputs and the gradients must be the same either way."""
    torch.manual_seed(0)
    conv = AdaptiveConv(12, 20, 8, kernels=kernels, demodulate=demodulate)
    with torch.no_grad():
        conv.style.weight.mul_(4)  # styles far from 1, so a missed scale would show
    x, w = torch.randn(3, 12, 5, 5), torch.randn(3, 8)
    results = []
    for on_activations in (False, True):
        conv.zero_grad()
        xx = x.clone().requires_grad_()
        out = conv(xx, w, on_activations=on_activations)
        out.square().mean().backward()
        results.append((out.detach(), xx.grad, conv.bank.grad.clone(), conv.style.weight.grad.clone()))
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_generator_draws_every_scale_and_the_discriminator_judges_them_all():
    torch.manual_seed(0)
    gen = Generator(GAN_PRESETS["tiny"])
    disc = Discriminator(channels=(8, 8, 8, 8, 8))
    text, mask = captions(3)
    outputs = gen(torch.randn(3, gen.config.z_dim), text, mask)
    assert [tuple(o.shape) for o in outputs] == [(3, 3, r, r) for r in (8, 16, 32, 64)]
    assert disc(outputs, text, mask).shape == (3,)
    real = pyramid(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert [r.shape[-1] for r in real] == [8, 16, 32, 64]
    assert torch.allclose(real[0][:, :, 0, 0], real[3][:, :, :8, :8].mean((2, 3)), atol=1e-6)
    # the coarse scales count: changing only the 8 px image changes the score
    changed = [real[0] + 0.5, *real[1:]]
    assert not torch.allclose(disc(real, text, mask), disc(changed, text, mask))


def test_the_text_modes_of_the_ablation():
    text, mask = captions()
    z = torch.randn(2, 16)
    for mode, attends, reads_text in (("none", False, False), ("pooled", False, True), ("words", True, True)):
        torch.manual_seed(0)
        gen = Generator(GeneratorConfig(**{**GAN_PRESETS["tiny"].__dict__, "text": mode}))
        assert bool(len(gen.attention)) == attends
        other = gen(z, text.flip(0), mask)[-1]
        assert torch.allclose(gen(z, text, mask)[-1], other) != reads_text
    with pytest.raises(ValueError, match="text must be one of"):
        GeneratorConfig(text="sentences")


def test_the_matching_aware_loss_sees_rotated_captions_and_skips_equal_ones():
    text, mask = captions(4)
    text[3] = text[2]  # two images of one caption
    embeds, rot_mask, differs = rotated(text, mask)
    assert torch.equal(embeds[1], text[0]) and torch.equal(embeds[0], text[3])  # rotated by one
    assert differs.tolist() == [True, True, True, False]  # row 3 got row 2's caption: the same one
    real, fake, mismatched = torch.full((4,), 5.0), torch.full((4,), -5.0), torch.tensor([-5.0, -5.0, -5.0, 50.0])
    low = discriminator_loss(real, fake, mismatched, differs)
    assert low < 0.05  # row 3's high score under "another" caption is not punished: it is its own
    assert discriminator_loss(real, fake, torch.full((4,), 5.0), differs) > 4  # mismatches scored real are


def test_one_trunk_pass_judges_a_drawing_under_its_caption_and_under_another():
    """The trainer scores real drawings under the rotated captions from the same trunk features:
    the same scores as a second full pass, and different from the scores under their own captions."""
    torch.manual_seed(0)
    disc = Discriminator(channels=(8, 8, 8, 8, 8))
    real = pyramid(torch.rand(4, 3, 64, 64) * 2 - 1)
    text, mask = captions(4)
    other, other_mask, _ = rotated(text, mask)
    h = disc.features(real)
    assert torch.allclose(disc.judge(h, text, mask), disc(real, text, mask), atol=1e-6)
    assert torch.allclose(disc.judge(h, other, other_mask), disc(real, other, other_mask), atol=1e-6)
    assert not torch.allclose(disc.judge(h, other, other_mask), disc.judge(h, text, mask))


def test_r1_is_the_gradient_norm_at_real_images():
    disc = Discriminator(channels=(4, 4, 4, 4, 4), text=False)
    real = [r.requires_grad_() for r in pyramid(torch.rand(2, 3, 64, 64))]
    text, mask = captions()
    penalty = r1_penalty(disc(real, text, mask), real)
    assert penalty.item() > 0 and penalty.requires_grad


def test_augmentation_shifts_every_scale_alike_and_pads_with_white():
    images = pyramid(torch.zeros(2, 3, 64, 64) - 1)  # black drawings
    out = diff_augment(images, torch.Generator().manual_seed(1), shift=0.25, cutout=0.25)
    white = [(o == 1).float().mean().item() for o in out]
    assert all(w > 0.05 for w in white)  # some white came in from the edge or the cutout
    assert max(white) - min(white) < 0.1  # the same share at every scale
