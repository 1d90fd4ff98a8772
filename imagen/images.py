"""Conversions between image tensors in [-1, 1] and PIL images or uint8 arrays."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> B PIL images."""
    return [Image.fromarray(a) for a in to_uint8(x)]


def from_uint8(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    t = torch.as_tensor(a)
    return t.permute(0, 3, 1, 2).float() / 127.5 - 1


def grid(images: list[Image.Image], columns: int, captions: list[str] | None = None) -> Image.Image:
    """Tile equally sized images into rows of `columns`, with an optional caption under each."""
    if not images:
        raise ValueError("no images to tile")
    w, h = images[0].size
    label_h = 14 if captions else 0
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + label_h)), "white")
    if captions:
        from PIL import ImageDraw
        draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        x, y = (i % columns) * w, (i // columns) * (h + label_h)
        sheet.paste(im.convert("RGB").resize((w, h)), (x, y))
        if captions:
            text = captions[i] if len(captions[i]) * 6 <= w else captions[i][: max(w // 6 - 1, 1)] + "…"
            draw.text((x + 2, y + h + 1), text, fill="black")
    return sheet


def heat_overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.6) -> Image.Image:
    """A heat map laid over an image: (3, H, W) in [-1, 1] and (H, W) >= 0 -> PIL. The map is scaled
    to its own maximum and coloured with matplotlib's magma (dark: little, bright: much); the image
    shows through in grey, so the map reads as "where on this picture"."""
    from matplotlib import colormaps
    grey = ((image.float().clamp(-1, 1) + 1) / 2).mean(0)  # (H, W) in [0, 1]
    h = heat.float()
    h = (h / h.max()).clamp(0, 1) if h.max() > 0 else h
    colour = torch.from_numpy(colormaps["magma"](h.cpu().numpy())[..., :3]).float()  # (H, W, 3)
    mixed = alpha * colour + (1 - alpha) * grey.cpu()[..., None]
    return Image.fromarray((mixed.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
