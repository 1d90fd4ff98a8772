import hashlib

import numpy as np
import torch

from imagen.data.colours import (
    HUE_CLASSES,
    TARGET_HUE,
    clear_colour,
    dominant_hue,
    dominant_hue_angle,
    grey_fill,
    hsv_to_rgb,
    hue_class_map,
    hue_distance,
    hue_histogram,
    is_held_out,
    recolour,
    recolour_to,
    rgb_to_hsv,
    tint_grey,
)


def disc(rgb: tuple[int, int, int], outline: bool = True) -> torch.Tensor:
    """A (1, 3, 64, 64) drawing in [-1, 1]: a disc of one colour on white, outlined in black."""
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    r = ((yy - 32) ** 2 + (xx - 32) ** 2).float().sqrt()
    image = torch.ones(3, 64, 64)
    image[:, r < 20] = torch.tensor(rgb, dtype=torch.float32)[:, None] / 255
    if outline:
        image[:, (r >= 20) & (r < 22)] = 0
    return image[None] * 2 - 1


def test_hsv_round_trip():
    rgb = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5)


def test_real_emoji_colours_fall_in_their_classes():
    # Twemoji's and OpenMoji's own palettes (red heart, orange, face yellow, green, blue, purple, pink heart)
    palette = {"red": (221, 46, 68), "orange": (244, 144, 12), "yellow": (255, 204, 77), "green": (92, 158, 49),
               "blue": (30, 80, 160), "purple": (170, 142, 214), "pink": (244, 171, 186)}
    for colour, rgb in palette.items():
        assert dominant_hue(disc(rgb)) == [colour], colour
    # white, grey and black have no hue to name
    assert dominant_hue(disc((128, 128, 128))) == [None]


def test_recolouring_turns_the_ink_and_leaves_outlines_and_background_alone():
    banana = disc((255, 204, 77))  # yellow
    for target in HUE_CLASSES:
        turned = recolour(banana, torch.tensor([TARGET_HUE[target] - 43.0]))
        assert clear_colour(hue_histogram(turned)) == [target], target
        untouched = (banana == 1).all(1) | (banana == -1).all(1)  # (1, 64, 64) white background, black outline
        assert torch.allclose(turned.permute(0, 2, 3, 1)[untouched], banana.permute(0, 2, 3, 1)[untouched], atol=1e-5)
    # a light, weakly saturated drawing turned to red reads as pink, as the light reds of the data do
    light_blue = disc((146, 211, 245))
    assert clear_colour(hue_histogram(recolour(light_blue, torch.tensor([360.0 - 201])))) == ["pink"]


def two_blues() -> torch.Tensor:
    """A (1, 3, 64, 64) drawing in two blues 46 degrees of hue apart, outlined in black."""
    image = disc((30, 60, 200))  # hue 229, value 0.78
    image[:, :, 32:] = disc((40, 200, 210))[:, :, 32:]  # hue 184, value 0.82
    return image


def test_recolouring_into_a_narrow_class_keeps_every_shade_inside_it():
    blues = two_blues()
    for target in HUE_CLASSES:
        hsv = rgb_to_hsv((recolour_to(blues, ["blue"], [target]) + 1) / 2)
        classes = hue_class_map(hsv)
        ink = classes >= 0
        assert (classes[ink] == HUE_CLASSES.index(target)).all(), target  # both shades are the asked colour
        assert torch.equal(ink, hue_class_map(rgb_to_hsv((blues + 1) / 2)) >= 0)  # outlines stay ink-free
    # rotation alone spills the 46-degree spread out of yellow's 30 degrees
    turned = recolour(blues, TARGET_HUE["yellow"] - dominant_hue_angle(blues, ["blue"]))
    classes = hue_class_map(rgb_to_hsv((turned + 1) / 2))
    assert ((classes >= 0) & (classes != HUE_CLASSES.index("yellow"))).any()


def test_ink_turned_yellow_is_lightened_and_other_colours_keep_their_value():
    blues = two_blues()
    ink = hue_class_map(rgb_to_hsv((blues + 1) / 2)) >= 0
    value = rgb_to_hsv((blues + 1) / 2)[:, 2][ink]
    yellow = rgb_to_hsv((recolour_to(blues, ["blue"], ["yellow"]) + 1) / 2)[:, 2][ink]
    purple = rgb_to_hsv((recolour_to(blues, ["blue"], ["purple"]) + 1) / 2)[:, 2][ink]
    assert yellow.min() > 0.85 > value.min()  # a dark blue turns yellow, not olive
    assert torch.allclose(purple, value, atol=1e-5)


def test_grey_fill_is_tinted_and_paper_outlines_and_thin_grey_lines_stay():
    elephant = disc((150, 150, 150))  # a grey fill, outlined in black, on white
    elephant[:, :, 2, 4:60] = 150 / 127.5 - 1  # a 1 px grey line: an anti-aliased edge, not fill
    assert not grey_fill(elephant)[0, 2].any() and grey_fill(elephant)[0, 32, 32]
    for target in HUE_CLASSES:
        tinted = tint_grey(elephant, [target])
        assert clear_colour(hue_histogram(tinted)) == [target], target
        fill = grey_fill(elephant)[0]
        assert torch.allclose(tinted[0][:, ~fill], elephant[0][:, ~fill], atol=1e-5)  # all else as it was
    # a coloured drawing has no grey fill: tinting leaves it alone
    banana = disc((255, 204, 77))
    assert torch.allclose(tint_grey(banana, ["blue"]), banana, atol=1e-5)


def test_hue_distance_is_on_a_circle():
    assert hue_distance("red", "orange") == 1
    assert hue_distance("red", "pink") == 1  # pink sits between purple and red
    assert hue_distance("yellow", "purple") == 3
    assert max(hue_distance(a, b) for a in HUE_CLASSES for b in HUE_CLASSES) == 3


def test_the_hold_out_rule_is_the_issue_rule_and_keeps_out_about_a_quarter():
    for colour, name in [("purple", "banana"), ("pink", "cat face"), ("blue", "sun")]:
        expected = hashlib.sha1(f"{colour} {name}".encode()).hexdigest()[0] in "0123"
        assert is_held_out(colour, name) == expected
    names = [f"concept {i}" for i in range(400)]
    share = np.mean([is_held_out(c, n) for c in HUE_CLASSES for n in names])
    assert 0.2 < share < 0.3
