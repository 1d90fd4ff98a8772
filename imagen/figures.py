"""The README's pictures, drawn by the shipped pipeline itself.

    python -m imagen.figures --checkpoint checkpoints/emoji --out assets

- cascade.png: one caption through the cascade, with x_t and the predicted x0 at a few steps
  of each stage;
- samples.png: the 16 sample prompts at 256 px (seed 0, default settings);
- sr_vs_bicubic.png: the SR stage's 256 px output beside a bicubic upscale of the same 64 px image;
- attention.png, guidance_parts.png, samplers.png: the page's three instruments (the cross-attention
  map of each word, the two halves of classifier-free guidance, the samplers side by side) at a few
  steps of one caption;
- restoration.png: real images noised to a few timesteps and denoised by the base stage from
  there: where the model's shapes go wrong;
- styles.png (a checkpoint whose captions name styles): the sample names alone and with each style;
- colours.png: a few concepts (one of them grey) in every colour word, as typed and in each style;
  the pairs training never showed (the hold-out rule) are named in the title.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .config import DEFAULT_CHECKPOINT
from .data import load_dataset
from .data.colours import HUE_CLASSES, is_held_out
from .images import from_uint8, grid, heat_overlay, to_pil
from .instruments import word_maps, words
from .pipeline import ImagenPipeline
from .samplers import SAMPLERS, evenly_spaced

SAMPLE_PROMPTS = [
    "red apple, twemoji style", "grinning face, openmoji style", "cat face, twemoji style",
    "red heart, twemoji style", "sun, openmoji style", "pizza, twemoji style",
    "flag of Japan, twemoji style", "rocket, openmoji style", "ghost, twemoji style",
    "snowman, openmoji style", "hamburger, twemoji style", "face with tears of joy, twemoji style",
    "penguin, openmoji style", "banana, twemoji style", "thumbs up, openmoji style", "fire, twemoji style",
]
# Real images for the restoration figure: shapes the model does not draw from pure noise.
RESTORATION_PROMPTS = ["red apple, twemoji style", "pizza, twemoji style", "rocket, openmoji style",
                       "banana, twemoji style", "sun, openmoji style", "ghost, twemoji style"]
# The elephant is grey: recolouring turns hues, so only --tint-grey teaches it a colour.
COLOUR_NAMES = ["cat face", "banana", "rocket", "elephant"]
CASCADE_PROMPT = "grinning face, openmoji style"
INSTRUMENT_PROMPT = "red apple, twemoji style"
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
        for i in evenly_spaced(len(stage_steps), frames):
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


def labelled_rows(rows: list[tuple[str, list[Image.Image]]], column_labels: list[str], title: str) -> Image.Image:
    """Rows of equally many images, a label left of each row and above each column, a title on top."""
    label_w, top, pad = 150, 34, 6
    n = max(len(images) for _, images in rows)
    sheet = Image.new("RGB", (label_w + n * (TILE + pad), top + len(rows) * (TILE + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), title, fill="black")
    for c, label in enumerate(column_labels):
        draw.text((label_w + c * (TILE + pad), top - 14), label, fill="black")
    for r, (label, images) in enumerate(rows):
        y = top + r * (TILE + pad)
        draw.text((pad, y + TILE // 2 - 6), label, fill="black")
        for c, image in enumerate(images):
            sheet.paste(image.resize((TILE, TILE), Image.Resampling.NEAREST), (label_w + c * (TILE + pad), y))
    return sheet


def attention_figure(pipe: ImagenPipeline, prompt: str, seed: int = 0, frames: int = 5) -> Image.Image:
    """The predicted x0 at a few base steps, and under it each word's cross-attention map over it."""
    steps = [s for s in pipe.generate(prompt, seed=seed, sr=False, attention=True)]
    picks = [steps[i] for i in evenly_spaced(len(steps), frames)]
    spans = words(pipe.text_encoder, prompt)
    maps = [word_maps(s.attention[0], spans) for s in picks]
    rows = [("predicted x0", [to_pil(s.x0_pred)[0] for s in picks])]
    rows += [(f'"{w}"' if w != "all" else "all words", [heat_overlay(s.x0_pred[0], m[w]) for s, m in zip(picks, maps)])
             for w in maps[0]]
    return labelled_rows(rows, [f"step {s.index + 1}/{s.total}, t={s.timestep}" for s in picks],
                         f'Where the base stage attends to each word of "{prompt}" (bright: much)')


def guidance_figure(pipe: ImagenPipeline, prompt: str, seed: int = 0, frames: int = 5) -> Image.Image:
    """Classifier-free guidance at a few base steps: x0 without the caption, with it, the push
    w (cond - uncond) (grey: none, contrast stretched), and the guided x0 the sampler used."""
    settings = pipe.defaults
    steps = list(pipe.generate(prompt, seed=seed, sr=False, guidance_parts=True))
    picks = [steps[i] for i in evenly_spaced(len(steps), frames)]
    pushes = [settings.guidance_at(s.timestep) * (s.x0_cond - s.x0_uncond) for s in picks]
    interval = f"w = {settings.guidance_scale:g} at t >= {settings.guidance_min_t}, 1 below; " \
        if settings.guidance_min_t else ""
    rows = [("x0 without caption", [to_pil(s.x0_uncond)[0] for s in picks]),
            ("x0 with caption", [to_pil(s.x0_cond)[0] for s in picks]),
            ("w x difference", [to_pil(p / p.abs().amax().clamp(min=0.05))[0] for p in pushes]),
            ("guided x0", [to_pil(s.x0_pred)[0] for s in picks])]
    columns = [f"{s.index + 1}/{s.total}: t={s.timestep}, w={settings.guidance_at(s.timestep):g}" for s in picks]
    return labelled_rows(rows, columns,
                         f'eps = eps_uncond + w (eps_cond - eps_uncond) ({interval}as pictures): "{prompt}"')


def samplers_figure(pipe: ImagenPipeline, prompt: str, seed: int = 0, frames: int = 5) -> Image.Image:
    """The same prompt, seed and step count with each sampler: its predicted x0 at a few steps."""
    rows = []
    for name in SAMPLERS:
        start = time.perf_counter()
        steps = list(pipe.generate(prompt, seed=seed, sr=False, sampler=name))
        seconds = time.perf_counter() - start
        shown = [to_pil(steps[i].x0_pred)[0] for i in evenly_spaced(len(steps), frames)]
        rows.append((f"{name} ({seconds:.2f} s)", shown))
    n = pipe.defaults.steps
    return labelled_rows(rows, [f"step {i + 1}/{n}" for i in evenly_spaced(n, frames)],
                         f'Three samplers, one seed, {n} steps each: predicted x0 of "{prompt}"')


def restoration_figure(pipe: ImagenPipeline, images_64: torch.Tensor, prompts: list[str], seed: int = 0,
                       starts: tuple[int, ...] = (999, 866, 732, 599, 466)) -> Image.Image:
    """Real 64 px images (B, 3, 64, 64) in [-1, 1] noised to each start timestep and denoised by the
    base stage from there (`ImagenPipeline.restore`): the row where the shapes come back is the
    noise level below which the model can finish a shape, and above which it must lay one out."""
    rows = [("real image", to_pil(images_64))]
    for t in starts:
        out = list(pipe.restore(images_64, prompts, t, seed=seed))
        first = out[0].timestep
        rows.append((f"from t={first} (sigma {pipe.noise_level('base', first):.2f})", to_pil(out[-1].x_prev)))
    return labelled_rows(rows, [p.removesuffix(" style") for p in prompts],
                         "Real images noised to t, then denoised by the base stage from there")


def styles_figure(pipe: ImagenPipeline, names: list[str], seed: int = 0) -> Image.Image:
    """Each name as typed and with each style the checkpoint's captions name (64 px, one seed): a
    bare name blends the styles' shapes, a named style commits to one."""
    rows = []
    for style in ("", *pipe.config.styles):
        prompts = [f"{name}, {style}" if style else name for name in names]
        images = []
        for start in range(0, len(prompts), 4):
            images += pipe(prompts[start:start + 4], seed=seed + start, sr=False).images_64
        rows.append((f'"..., {style}"' if style else "the name alone", images))
    return labelled_rows(rows, [n if len(n) <= 18 else n[:17] + "…" for n in names],
                         f"The same names and seeds, with and without a style (64 px, seeds from {seed})")


def colours_figure(pipe: ImagenPipeline, names: list[str], seed: int = 0) -> Image.Image:
    """Each name alone and in each colour word, one row per name and style (as typed, then each
    style the checkpoint's captions name), one seed: does the colour word move the colour and keep the shape?"""
    rows = []
    for name in names:
        for style in ("", *pipe.config.styles):
            prompts = [f"{colour} {name}".strip() + (f", {style}" if style else "") for colour in ("", *HUE_CLASSES)]
            # one call each: every tile starts from the same noise, so only the words differ
            images = [pipe([p], seed=seed, sr=False).images_64[0] for p in prompts]
            rows.append((f"{name}, {style.removesuffix(' style')}" if style else name, images))
    held = "; ".join(f"{name}: {', '.join(c for c in HUE_CLASSES if is_held_out(c, name)) or 'none'}"
                     for name in names)
    return labelled_rows(rows, ["as named", *HUE_CLASSES],
                         f"Colour words (64 px, seed {seed}). Never in training: {held}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagen.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
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
    attention_figure(pipe, INSTRUMENT_PROMPT, args.seed).save(args.out / "attention.png", optimize=True)
    data = load_dataset("emoji")
    rows = [data.main_captions.index(p) for p in RESTORATION_PROMPTS]
    real = from_uint8(np.stack([data.images_64[i] for i in rows]))
    restoration_figure(pipe, real, RESTORATION_PROMPTS, args.seed).save(args.out / "restoration.png", optimize=True)
    guidance_figure(pipe, INSTRUMENT_PROMPT, args.seed).save(args.out / "guidance_parts.png", optimize=True)
    if pipe.config.styles:
        names = [p.rsplit(", ", 1)[0] for p in SAMPLE_PROMPTS]
        styles_figure(pipe, names, args.seed).save(args.out / "styles.png", optimize=True)
    samplers_figure(pipe, INSTRUMENT_PROMPT, args.seed).save(args.out / "samplers.png", optimize=True)
    colours_figure(pipe, COLOUR_NAMES, args.seed).save(args.out / "colours.png", optimize=True)
    print(f"wrote {args.out}/cascade.png, samples.png, sr_vs_bicubic.png, attention.png, guidance_parts.png, "
          f"restoration.png, {'styles.png, ' if pipe.config.styles else ''}samplers.png and colours.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
