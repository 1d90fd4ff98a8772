"""Tiny, randomly initialised pipelines (the whole cascade runs in about a second on a CPU) and a
folder of captioned shapes: what the tests train, sample and serve."""

from __future__ import annotations

import torch

from imagen.config import PipelineConfig, Settings
from imagen.pipeline import ImagenPipeline
from imagen.samplers import Step
from imagen.text_encoder import TextEncoder
from imagen.unets import build_unet


def make_tiny_pipeline(text_encoder: TextEncoder, seed: int = 0, sr: bool = True,
                       dtype: str = "float32") -> ImagenPipeline:
    torch.manual_seed(seed)
    base = build_unet("base", "tiny", text_encoder.dim)
    sr_unet = build_unet("sr", "tiny", text_encoder.dim) if sr else None
    config = PipelineConfig(defaults=Settings(steps=3, sr_steps=2, sr=sr), **({} if sr else {"sr": None}))
    return ImagenPipeline(text_encoder, base, sr_unet, config, device="cpu", dtype=dtype)


SHAPE_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (235, 200, 20)}


def make_shapes_folder(folder, n: int = 8):
    """n captioned images ("a red circle on white", ...) in the imagefolder layout."""
    import json

    from PIL import Image, ImageDraw
    folder.mkdir(parents=True, exist_ok=True)
    colours, rows = list(SHAPE_COLOURS), []
    for i in range(n):
        colour, shape = colours[i % len(colours)], ("circle", "square")[(i // len(colours)) % 2]
        im = Image.new("RGB", (96, 96), "white")
        draw = ImageDraw.Draw(im)
        box = (20 + i % 3, 20, 76, 76 - i % 2)
        (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=SHAPE_COLOURS[colour])
        im.save(folder / f"{i:03d}.png")
        rows.append({"file_name": f"{i:03d}.png", "text": f"a {colour} {shape} on white"})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def fake_step(index: int, total: int = 3, stage: str = "base", size: int = 64, noise_level: float = 1.0) -> Step:
    """A Step as the samplers yield it, with a smooth ramp for x_t and its negative for x0 (B = 1)."""
    x = torch.linspace(-1, 1, 3 * size * size).reshape(1, 3, size, size)  # (B, 3, H, W)
    return Step(stage, index, total, 999 - 333 * index, x, -x, x, noise_level)
