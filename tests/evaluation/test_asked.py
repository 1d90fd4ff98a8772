"""The held-out pairs --mode colour and --mode grey ask for, picked from a small emoji-like dataset:
outlined discs captioned as the emoji data captions them ("elephant, openmoji style")."""

import pytest
from PIL import Image, ImageDraw

from imagen.data.colours import HUE_CLASSES, hue_distance, is_held_out
from imagen.data.prepared import build, square_sizes
from imagen.evaluation.asked import colour_pairs, grey_pairs

GREY, LIGHT = (150, 150, 150), (240, 240, 240)
DRAWINGS = {"elephant": GREY, "koala": GREY, "gear": GREY, "shark": GREY, "ghost": LIGHT, "grey heart": GREY,
            "banana": (255, 204, 77), "frog": (92, 158, 49), "whale": (30, 80, 160), "grapes": (170, 90, 200),
            "tangerine": (244, 144, 12), "red apple": (221, 46, 68)}


def disc(rgb: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(image).ellipse((48, 48, 208, 208), fill=rgb, outline=(0, 0, 0), width=8)
    return image


@pytest.fixture(scope="module")
def emoji_like(tmp_path_factory):
    items = [(lambda rgb=rgb: square_sizes(disc(rgb)), [f"{name}, {style} style", name])
             for name, rgb in DRAWINGS.items() for style in ("openmoji", "twemoji")]
    return build(tmp_path_factory.mktemp("data") / "emoji-like", items, len(items), {"source": "test"}, "emoji-like")


def test_colour_pairs_are_held_out_and_far_from_the_concepts_own_colour(emoji_like):
    own_colours = {"banana": "yellow", "frog": "green", "whale": "blue", "grapes": "purple", "tangerine": "orange"}
    pairs = colour_pairs(emoji_like, 100)
    names = [emoji_like.captions[i][1] for i, _, _ in pairs]
    # each clearly coloured concept whose name says no colour and that has a far held-out colour, once,
    # in OpenMoji's drawing; not the red apple (its name says red), not the grey ones
    assert names == list(dict.fromkeys(names))
    assert set(names) == {n for n, own in own_colours.items()
                          if any(is_held_out(c, n) and hue_distance(c, own) >= 2 for c in HUE_CLASSES)}
    for (i, own, asked), name in zip(pairs, names):
        assert emoji_like.captions[i][0] == f"{name}, openmoji style"
        assert own == own_colours[name] and is_held_out(asked, name) and hue_distance(own, asked) >= 2


def test_grey_pairs_ask_grey_filled_concepts_for_held_out_colours(emoji_like):
    pairs = grey_pairs(emoji_like, 100)
    names = [emoji_like.captions[i][1] for i, _, _ in pairs]
    # grey fills only: not the white ghost, not a name that says its colour, not a coloured drawing
    allowed = {n for n in ("elephant", "koala", "gear", "shark") if any(is_held_out(c, n) for c in HUE_CLASSES)}
    assert set(names) == allowed and len(names) == len(set(names))
    assert "elephant" in allowed  # its held-out colours include pink: "pink elephant" is asked, never trained
    for (_, own, asked), name in zip(pairs, names):
        assert own is None and is_held_out(asked, name)
    assert grey_pairs(emoji_like, 2) == pairs[:2]  # the same pairs, whatever the count asked
