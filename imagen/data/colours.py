"""Colour words that match the pixels: seven hue classes, the dominant one of a drawing,
recolouring a drawing into another class by rotating the hue of its coloured ink, and tinting a
grey-filled drawing (an elephant, a cloud), which has no hue to rotate.

The emoji data shows most objects in one colour only (bananas are yellow), so a model trained on
it never learns what "purple" does to a banana. Rotating the hue of a drawing's chromatic ink
(white, grey and black outlines have no hue and stay as they are) and saying the new colour in
the caption teaches the colour word apart from the object. The same classifier judges, in the
evaluation, whether a generated drawing has the colour its caption asked for.

Hold-out rule: a (colour, concept) pair is never produced in training when
`sha1(f"{colour} {concept}")` starts with 0, 1, 2 or 3 (about a quarter of all pairs); the
evaluation asks for exactly those pairs, so it measures colours on objects the model never saw
in them.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch
import torch.nn.functional as F

# In hue order, so neighbours on this circle are neighbours in hue (pink sits between purple and red).
HUE_CLASSES = ("red", "orange", "yellow", "green", "blue", "purple", "pink")
# Where each class starts, in degrees of HSV hue; red wraps around 0.
_STARTS = {"red": 345.0, "orange": 12.0, "yellow": 40.0, "green": 70.0, "blue": 165.0, "purple": 255.0,
           "pink": 290.0}
# The hue a recoloured drawing's dominant class is rotated to.
TARGET_HUE = {"red": 0.0, "orange": 28.0, "yellow": 52.0, "green": 115.0, "blue": 215.0, "purple": 272.0,
              "pink": 320.0}
# A pixel is chromatic ink when it is coloured enough and not near-black; white, greys and black
# outlines are not.
MIN_SATURATION, MIN_VALUE = 0.25, 0.25
# Light, weakly saturated reds read as pink (Twemoji's pink heart: hue 348, saturation 0.30, value 0.96).
_PINK_SATURATION, _PINK_VALUE = 0.45, 0.85
# Names that already carry a colour keep it: no colour word is added to them and they are not recoloured.
COLOUR_WORDS = re.compile(r"\b(red|orange|yellow|green|blue|purple|pink|brown|black|white|grey|gray|violet)\b",
                          re.IGNORECASE)

# Yellow ink is bright (real emoji: mean value 0.95, against 0.64 to 0.89 for the other classes); a
# dark blue turned to yellow's hue is olive, which reads as green. Recolouring into yellow lifts the value.
VALUE_LIFT = {"yellow": 0.3}
# Hues this far (degrees) from a recoloured drawing's dominant hue are squeezed towards it.
SQUEEZE_REACH = 60.0

HELD_OUT_PREFIXES = "0123"

# Grey fill: unsaturated pixels of a middle value, in patches at least 3 px wide at 64 px. White
# paper, black outlines and the thin anti-aliased greys between the two are not fill.
GREY_VALUES = (0.35, 0.9)
# A drawing is grey-filled when this share of its pixels is grey fill (Twemoji's elephant: 0.73,
# its cloud 0.20; clearly coloured drawings average 0.02).
MIN_GREY_FILL = 0.15
# Tinted fill keeps its value (the shading stays) and takes this saturation.
TINT_SATURATION = 0.6


def is_held_out(colour: str, concept: str) -> bool:
    """The hold-out rule: True for the (colour, concept) pairs training never produces."""
    return hashlib.sha1(f"{colour} {concept}".encode()).hexdigest()[0] in HELD_OUT_PREFIXES


def hue_distance(a: str, b: str) -> int:
    """Steps between two hue classes on the circle of HUE_CLASSES (0 to 3)."""
    i, j = HUE_CLASSES.index(a), HUE_CLASSES.index(b)
    return min(abs(i - j), len(HUE_CLASSES) - abs(i - j))


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 3, H, W): hue in degrees [0, 360), saturation, value."""
    r, g, b = rgb.unbind(-3)
    maxc, argmax = rgb.max(-3)
    minc = rgb.min(-3).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.stack([((g - b) / safe) % 6, (b - r) / safe + 2, (r - g) / safe + 4], -3)
    hue = hue.gather(-3, argmax.unsqueeze(-3)).squeeze(-3) * 60
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    saturation = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))  # 0 for black, where delta is 0
    return torch.stack([hue % 360, saturation, maxc], -3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of rgb_to_hsv."""
    h, s, v = hsv.unbind(-3)
    k = torch.stack([(5 + h / 60) % 6, (3 + h / 60) % 6, (1 + h / 60) % 6], -3)  # R, G, B
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * (torch.minimum(k, 4 - k).clamp(0, 1))


def hue_class_map(hsv: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) HSV -> (..., H, W) long: the index into HUE_CLASSES of each chromatic pixel, -1 elsewhere."""
    h, s, v = hsv.unbind(-3)
    starts = torch.tensor([_STARTS[c] for c in HUE_CLASSES[1:]], device=h.device)  # orange .. pink
    index = torch.bucketize(h.contiguous(), starts, right=True)  # 0 below orange's start (red), 1 orange, ... 6 pink
    index = torch.where(h >= _STARTS["red"], torch.zeros_like(index), index)  # red wraps past 345
    light = (s < _PINK_SATURATION) & (v > _PINK_VALUE)
    index = torch.where((index == 0) & light, torch.full_like(index, HUE_CLASSES.index("pink")), index)
    chromatic = (s >= MIN_SATURATION) & (v >= MIN_VALUE)
    return torch.where(chromatic, index, torch.full_like(index, -1))


def hue_histogram(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 7): the share of each image's pixels in each hue class."""
    classes = hue_class_map(rgb_to_hsv((images.float().clamp(-1, 1) + 1) / 2)).flatten(1)  # (B, HW)
    counts = torch.stack([(classes == k).sum(1) for k in range(len(HUE_CLASSES))], 1)
    return counts.float() / classes.shape[1]


def dominant_hue(images: torch.Tensor, min_ink: float = 0.02) -> list[str | None]:
    """The hue class holding most of each image's chromatic ink; None where under `min_ink` of the
    pixels are chromatic (a grey, black or white drawing has no colour to name)."""
    hist = hue_histogram(images)
    return [HUE_CLASSES[int(h.argmax())] if h.sum() >= min_ink else None for h in hist]


def clear_colour(hist: torch.Tensor, min_ink: float = 0.08, min_share: float = 0.5) -> list[str | None]:
    """For each row of hue_histogram: its dominant class when the drawing is clearly of one
    colour (at least `min_ink` of the pixels chromatic, `min_share` of those in one class), else None.
    Only such drawings are recoloured or have their colour named."""
    total = hist.sum(1)
    share = hist.max(1).values / total.clamp(min=1e-8)
    return [HUE_CLASSES[int(h.argmax())] if t >= min_ink and q >= min_share else None
            for h, t, q in zip(hist, total, share)]


def dominant_hue_angle(images: torch.Tensor, classes: list[str]) -> torch.Tensor:
    """(B,) the circular mean hue, in degrees, of each image's pixels in its given class."""
    hsv = rgb_to_hsv((images.float().clamp(-1, 1) + 1) / 2)
    class_map = hue_class_map(hsv)
    angle = torch.deg2rad(hsv[:, 0])
    index = torch.tensor([HUE_CLASSES.index(c) for c in classes], device=images.device)[:, None, None]
    weight = (class_map == index).float()
    x, y = (weight * angle.cos()).sum((1, 2)), (weight * angle.sin()).sum((1, 2))
    return torch.rad2deg(torch.atan2(y, x)) % 360


def recolour(images: torch.Tensor, rotate_by: torch.Tensor, squeeze: torch.Tensor | None = None,
             centre: torch.Tensor | None = None, lift: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate the hue of every pixel of image i by rotate_by[i] degrees. (B, 3, H, W) in [-1, 1].
    White, grey and black have no saturation, so outlines and background stay as they are.
    With `squeeze` and `centre` (B,), hues within SQUEEZE_REACH degrees of centre[i] first move
    towards it by the factor squeeze[i] (those further out move with them, so the order of hues stays).
    With `lift` (B,), the chromatic ink's value moves towards 1: v -> 1 - (1 - v) * lift[i]."""
    hsv = rgb_to_hsv((images.float().clamp(-1, 1) + 1) / 2)
    hue = hsv[:, 0]
    if squeeze is not None and centre is not None:
        centre, factor = centre.to(hue.device).view(-1, 1, 1), squeeze.to(hue.device).view(-1, 1, 1)
        offset = (hue - centre + 180) % 360 - 180
        far = offset.abs() - SQUEEZE_REACH
        offset = torch.where(far <= 0, offset * factor, offset.sign() * (SQUEEZE_REACH * factor + far))
        hue = centre + offset
    hue = (hue + rotate_by.to(hsv.device).view(-1, 1, 1)) % 360
    value = hsv[:, 2]
    if lift is not None:
        chromatic = (hsv[:, 1] >= MIN_SATURATION) & (value >= MIN_VALUE)
        value = torch.where(chromatic, 1 - (1 - value) * lift.to(value.device).view(-1, 1, 1), value)
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], value], 1)) * 2 - 1


def _class_bounds(colour: str) -> tuple[float, float]:
    start = _STARTS[colour]
    end = _STARTS[HUE_CLASSES[(HUE_CLASSES.index(colour) + 1) % len(HUE_CLASSES)]]
    return start, (end - start) % 360


def squeeze_factor(own: str, target: str) -> float:
    """How much a drawing's hue spread shrinks when it is recoloured from class `own` into `target`:
    a rotated blue drawing spans about 60 degrees of hue and yellow is 30 wide, so rotation alone
    leaves a "yellow" drawing part green or orange and teaches the word a muddy range. The spread
    is fitted into 3/4 of the room the target hue has inside its class; never widened."""
    start, width = _class_bounds(target)
    inside = (TARGET_HUE[target] - start) % 360
    room = 0.75 * min(inside, width - inside)
    return min(1.0, room / (_class_bounds(own)[1] / 2))


def recolour_to(images: torch.Tensor, own: list[str], targets: list[str],
                reference: torch.Tensor | None = None) -> torch.Tensor:
    """Recolour image i from its hue class own[i] into targets[i]: its dominant hue goes to the
    target's hue, the spread around it is squeezed to fit the class and ink turned yellow is
    lightened. `reference` (same rows, e.g. the 64 px version of 256 px images) decides the
    dominant hue, so both recolour alike."""
    centre = dominant_hue_angle(images if reference is None else reference, own)
    turn = torch.tensor([TARGET_HUE[t] for t in targets]) - centre
    squeeze = torch.tensor([squeeze_factor(o, t) for o, t in zip(own, targets)])
    lift = torch.tensor([VALUE_LIFT.get(t, 1.0) for t in targets])
    return recolour(images, turn, squeeze, centre, lift)


def _in_chunks(images_uint8: np.ndarray, measure) -> np.ndarray:
    """`measure` of (N, H, W, 3) uint8 images, 512 at a time (a whole dataset fits no tensor at once)."""
    parts = []
    for i in range(0, len(images_uint8), 512):
        chunk = torch.from_numpy(np.array(images_uint8[i:i + 512])).permute(0, 3, 1, 2).float() / 127.5 - 1
        parts.append(measure(chunk))
    return torch.cat(parts).numpy()


def chromatic_share(images_uint8: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 7) hue histograms, in chunks (for a whole dataset)."""
    return _in_chunks(images_uint8, hue_histogram)


def _grey(images: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv((images.float().clamp(-1, 1) + 1) / 2)
    return (hsv[:, 1] < MIN_SATURATION) & (hsv[:, 2] > GREY_VALUES[0]) & (hsv[:, 2] < GREY_VALUES[1])


def grey_fill(images: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W) bool: the grey fill (GREY_VALUES, not thin lines).
    `reference` (the same drawings at 64 px) decides where the fill is, so both sizes tint alike."""
    grey = _grey(images)
    small = grey if reference is None else _grey(reference)
    opened = F.max_pool2d(-F.max_pool2d(-small[:, None].float(), 3, 1, 1), 3, 1, 1)  # an opening: thin greys go
    if opened.shape[-1] != grey.shape[-1]:
        opened = F.interpolate(opened, size=grey.shape[-2:], mode="nearest")
    return opened[:, 0].bool() & grey


def grey_fill_share(images_uint8: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) the share of each image's pixels that are grey fill, in chunks."""
    return _in_chunks(images_uint8, lambda chunk: grey_fill(chunk).float().mean((1, 2)))


def tint_grey(images: torch.Tensor, targets: list[str], reference: torch.Tensor | None = None) -> torch.Tensor:
    """Tint image i's grey fill into targets[i]: the fill takes the target's hue and TINT_SATURATION
    and keeps its value (yellow's is lifted, as in recolour_to); outlines, white and any coloured
    ink stay. (B, 3, H, W) in [-1, 1]; `reference` as in grey_fill."""
    hsv = rgb_to_hsv((images.float().clamp(-1, 1) + 1) / 2)
    fill = grey_fill(images, reference)
    hue = torch.tensor([TARGET_HUE[t] for t in targets], device=hsv.device).view(-1, 1, 1).expand_as(fill)
    lift = torch.tensor([VALUE_LIFT.get(t, 1.0) for t in targets], device=hsv.device).view(-1, 1, 1)
    tinted = torch.stack([torch.where(fill, hue, hsv[:, 0]),
                          torch.where(fill, torch.full_like(hsv[:, 1], TINT_SATURATION), hsv[:, 1]),
                          torch.where(fill, 1 - (1 - hsv[:, 2]) * lift, hsv[:, 2])], 1)
    return hsv_to_rgb(tinted) * 2 - 1
