"""Caption variety on real emoji drawings: the built-in dataset's first images, from a small pack."""

import numpy as np
import pytest
import torch

from imagen.data.caption_variety import CaptionVariety, split_caption
from imagen.data.colours import HUE_CLASSES, clear_colour, grey_fill, hue_histogram, is_held_out
from imagen.images import from_uint8


def test_split_caption():
    assert split_caption(["penguin, openmoji style", "penguin"]) == ("penguin", "openmoji")
    assert split_caption(["waving hand, dark skin tone, twemoji style", "x"]) == ("waving hand, dark skin tone",
                                                                                    "twemoji")
    assert split_caption(["a red circle on white"]) == ("a red circle on white", None)


def drawings(colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """One outlined disc per colour, (N, 64, 64, 3) uint8."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    out = np.full((len(colours), 64, 64, 3), 255, np.uint8)
    for k, rgb in enumerate(colours.values()):
        out[k][r < 20] = rgb
        out[k][(r >= 20) & (r < 22)] = 0
    return out


@pytest.fixture
def variety():
    colours = {"banana": (255, 204, 77), "frog": (92, 158, 49), "red apple": (221, 46, 68), "ghost": (235, 235, 235),
               "waving hand, dark skin tone": (244, 144, 12)}
    captions = [[f"{name}, {style} style", name] for name in colours for style in ("openmoji", "twemoji")]
    images = np.repeat(drawings(colours), 2, axis=0)
    return CaptionVariety(captions, images, {"banana": ("plantain",)}, "openmoji", recolour=0.5), images


def test_colours_are_named_only_where_the_drawing_is_clearly_of_one_and_the_name_says_none(variety):
    v, _ = variety
    # banana yellow, frog green; red apple's name says its colour, the ghost has none, skin is not a colour word
    assert v.colours == ["yellow", "yellow", "green", "green", None, None, None, None, None, None]


def test_a_recoloured_drawing_reads_as_the_colour_its_caption_says_and_held_out_pairs_never_appear(variety):
    v, images = variety
    x = from_uint8(torch.from_numpy(images))
    seen_colours, recoloured = set(), 0
    for step in range(60):
        index = torch.arange(len(images))
        captions, out, low = v.draw(index, x, torch.Generator().manual_seed(step))
        assert low is None and len(captions) == len(images)
        for k, caption in enumerate(captions):
            name = v.names[k]
            said = [c for c in HUE_CLASSES if f"{c} " in caption and c not in name]
            if said:
                assert not is_held_out(said[0], name)
                assert clear_colour(hue_histogram(out[k:k + 1])) == [said[0]]
                seen_colours.add(said[0])
            changed = not torch.equal(out[k], x[k])
            recoloured += changed
            if changed:
                assert said and said[0] != v.colours[k]
            if v.colours[k] is None:
                assert not changed
    assert recoloured > 20 and len(seen_colours) >= 5


def test_draws_repeat_exactly_for_the_same_generator_state(variety):
    v, images = variety
    x = from_uint8(torch.from_numpy(images))
    a = v.draw(torch.arange(len(images)), x, torch.Generator().manual_seed(3))
    b = v.draw(torch.arange(len(images)), x, torch.Generator().manual_seed(3))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_the_sr_stage_gets_its_target_and_its_low_res_input_recoloured_alike(variety):
    v, images = variety
    low = from_uint8(torch.from_numpy(images))
    full = torch.nn.functional.interpolate(low, size=256, mode="nearest")
    for step in range(20):
        captions, out, out_low = v.draw(torch.arange(len(images)), full, torch.Generator().manual_seed(step), low)
        assert torch.allclose(torch.nn.functional.avg_pool2d(out, 4), out_low, atol=1e-4)


def test_grey_fills_are_tinted_only_when_asked_and_read_as_the_colour_said():
    colours = {"elephant": (150, 150, 150), "ghost": (235, 235, 235), "banana": (255, 204, 77)}
    captions = [[f"{name}, {style} style", name] for name in colours for style in ("openmoji", "twemoji")]
    images = np.repeat(drawings(colours), 2, axis=0)
    x = from_uint8(torch.from_numpy(images))
    off = CaptionVariety(captions, images, {}, "openmoji", recolour=0.5)
    assert off.grey == [False] * 6  # off by default: the runs before it draw as they did
    on = CaptionVariety(captions, images, {}, "openmoji", recolour=0.5, tint=0.5)
    assert on.grey == [True, True, False, False, False, False]  # the ghost is white paper, not grey fill
    tinted, said_colours = 0, set()
    for step in range(40):
        captions_drawn, out, _ = on.draw(torch.arange(6), x, torch.Generator().manual_seed(step))
        for k in range(2):
            said = [c for c in HUE_CLASSES if f"{c} elephant" in captions_drawn[k]]
            changed = not torch.equal(out[k], x[k])
            assert changed == bool(said), captions_drawn[k]
            if changed:
                assert not is_held_out(said[0], "elephant")
                assert clear_colour(hue_histogram(out[k:k + 1])) == [said[0]]
                assert not grey_fill(out[k:k + 1]).any()  # all of the fill took the colour
                tinted += 1
                said_colours.add(said[0])
        assert torch.equal(out[2:4], x[2:4])  # the ghost stays white
    assert 20 < tinted < 60
    # every colour the hold-out rule allows on an elephant, and never pink (the "pink elephant")
    assert said_colours == {c for c in HUE_CLASSES if not is_held_out(c, "elephant")} == {"red", "orange", "blue"}
