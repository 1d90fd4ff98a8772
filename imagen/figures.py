"""The README's pictures, drawn by the shipped pipeline itself.

    python -m imagen.figures --checkpoint checkpoints/emoji --out assets

- cascade.png: one caption through the cascade, with x_t and the predicted x0 at a few steps
  of each stage;
- samples.png: the 16 sample prompts at 256 px (seed 0, default settings);
- sr_vs_bicubic.png: the SR stage's 256 px output beside a bicubic upscale of the same 64 px image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from .images import grid, to_pil
from .pipeline import ImagenPipeline

SAMPLE_PROMPTS = [
    "red apple, twemoji style", "grinning face, openmoji style", "cat face, twemoji style",
    "red heart, twemoji style", "sun, openmoji style", "pizza, twemoji style",
    "flag of Japan, twemoji style", "rocket, openmoji style", "ghost, twemoji style",
    "snowman, openmoji style", "hamburger, twemoji style", "face with tears of joy, twemoji style",
    "penguin, openmoji style", "banana, twemoji style", "thumbs up, openmoji style", "fire, twemoji style",
]
CASCADE_PROMPT = "grinning face, openmoji style"
TILE = 112


def cascade_figure(pipe: ImagenPipeline, prompt: str, seed: int = 0, frames: int = 4) -> Image.Image:
    """Two rows per stage (x_t above, predicted x0 below) at `frames` evenly spaced steps,
    the base stage on the left, the SR stage on the right, with the prompt and arrows."""
    steps = list(pipe.generate(prompt, seed=seed))
    columns, labels = [], []
    for stage in ("base", "sr"):
        stage_steps = [s for s in steps if s.stage == stage]
        if not stage_steps:
            continue
        picks = sorted({round(i * (len(stage_steps) - 1) / (frames - 1)) for i in range(frames)})
        for i in picks:
            s = stage_steps[i]
            columns.append((to_pil(s.x_t)[0], to_pil(s.x0_pred)[0]))
            size = 64 if stage == "base" else 256
            labels.append(f"{stage} {size}px  t={s.timestep}")
    pad, top, gap = 8, 54, 26
    n_base = sum(1 for label in labels if label.startswith("base"))
    width = pad + len(columns) * (TILE + pad) + gap
    sheet = Image.new("RGB", (width, top + 2 * (TILE + 16) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), f'prompt: "{prompt}"  ->  frozen text encoder  ->  text_embeds', fill="black")
    draw.text((pad, 22), "base stage: 64 px from noise (CFG + dynamic thresholding)", fill="black")
    draw.text((pad + n_base * (TILE + pad) + gap, 22), "SR stage: upsample, noise-augment, denoise at 256 px",
              fill="black")
    for col, ((x_t, x0), label) in enumerate(zip(columns, labels)):
        x = pad + col * (TILE + pad) + (gap if col >= n_base else 0)
        for row, (image, name) in enumerate(((x_t, "x_t"), (x0, "predicted x0"))):
            y = top + row * (TILE + 16)
            sheet.paste(image.resize((TILE, TILE), Image.Resampling.NEAREST), (x, y))
            draw.text((x, y + TILE + 2), name, fill="gray")
        draw.text((x, top - 14), label, fill="black")
    arrow_x = pad + n_base * (TILE + pad) + 4
    mid = top + TILE
    draw.line((arrow_x, mid, arrow_x + gap - 10, mid), fill="black", width=2)
    draw.polygon([(arrow_x + gap - 10, mid - 5), (arrow_x + gap - 4, mid), (arrow_x + gap - 10, mid + 5)],
                 fill="black")
    return sheet


def sr_comparison(pipe: ImagenPipeline, prompts: list[str], seed: int = 0) -> Image.Image:
    out = pipe(prompts, seed=seed)
    images, captions = [], []
    for prompt, small, large in zip(prompts, out.images_64, out.images_256):
        images += [small.resize((256, 256), Image.Resampling.BICUBIC), large]
        captions += [f"bicubic: {prompt}", "SR stage"]
    return grid(images, columns=4, captions=captions)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagen.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/emoji"))
    p.add_argument("--out", type=Path, default=Path("assets"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    pipe = ImagenPipeline.from_pretrained(args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    cascade_figure(pipe, CASCADE_PROMPT, args.seed).save(args.out / "cascade.png", optimize=True)
    images = []
    for start in range(0, len(SAMPLE_PROMPTS), 4):
        images += pipe(SAMPLE_PROMPTS[start:start + 4], seed=args.seed + start).images_256
    thumbs = [im.resize((160, 160), Image.Resampling.LANCZOS) for im in images]
    grid(thumbs, columns=4, captions=SAMPLE_PROMPTS).save(args.out / "samples.png", optimize=True)
    sr_comparison(pipe, SAMPLE_PROMPTS[:2], args.seed).save(args.out / "sr_vs_bicubic.png", optimize=True)
    print(f"wrote {args.out}/cascade.png, samples.png and sr_vs_bicubic.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
