"""The /generate API's image outputs (the page itself gets inline frames, live_view.py): enlarged
frames, the timeline gallery, and images that never repeat as files."""

from __future__ import annotations

import secrets

import torch
from PIL import Image

from ..images import to_pil
from ..samplers import Step, evenly_spaced

DISPLAY_SIZE = 256  # the API's frames are enlarged to 256 px, so both stages line up
TIMELINE_STEPS = 5  # steps kept per stage for the timeline, evenly spaced, last included


def display(x: torch.Tensor, size: int = DISPLAY_SIZE) -> Image.Image:
    """The first image of a (B, 3, H, W) batch, enlarged with nearest-neighbour so pixels stay visible."""
    image = to_pil(x[:1])[0]
    return image if image.width >= size else image.resize((size, size), Image.NEAREST)


class Timeline:
    """A few evenly spaced steps of each stage (x_t and x0_pred), so memory stays small however
    many steps run."""

    def __init__(self, per_stage: int = TIMELINE_STEPS):
        self.per_stage = per_stage
        self.items: list[tuple[Image.Image, str]] = []

    def keeps(self, step: Step) -> bool:
        return step.index in evenly_spaced(step.total, self.per_stage)

    def add(self, step: Step) -> None:
        if self.keeps(step):
            where = f"{step.stage} {step.index + 1}/{step.total}"
            self.items += [(display(step.x_t), f"{where} x_t"), (display(step.x0_pred), f"{where} x̂₀")]


def unique(image: Image.Image) -> Image.Image:
    """A copy of `image` that carries a fresh ImageUniqueID, in its EXIF (WebP frames) and as a PNG
    text chunk. Gradio names each file it serves after a hash of the encoded bytes and writes it in
    place: without the tag, an image sent twice (the same seed in two requests, the last frame again
    at the end) is rewritten while a client may still be downloading it."""
    image = image.copy()
    tag = secrets.token_hex(16)
    exif = Image.Exif()
    exif[0xA420] = tag  # ImageUniqueID
    image.info.update(exif=exif.tobytes(), ImageUniqueID=tag)
    return image


def fresh(outputs: tuple) -> tuple:
    """Every image among a handler's outputs (and in a gallery's list) made `unique`."""
    def one(value: object) -> object:
        if isinstance(value, Image.Image):
            return unique(value)
        if isinstance(value, list):
            return [(unique(im), caption) for im, caption in value]
        return value
    return tuple(one(v) for v in outputs)
