"""Figures of an evaluation run: metric-versus-setting curves and sample grids."""

from __future__ import annotations

from pathlib import Path

import torch

# The Figure API, not pyplot: no global figure state and no display backend.
from matplotlib.figure import Figure
from PIL import Image

from ..images import grid, to_pil


def plot_sweep(rows: list[dict], x_key: str, x_label: str, real: dict, noise: dict, path: Path,
               group_key: str | None = None, log_x: bool = False) -> None:
    """R-precision (ceiling and floor dashed) and Fréchet distance against one setting, one line
    per value of `group_key` (e.g. per sampler)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row[group_key]) if group_key else "", []).append(row)
    fig = Figure(figsize=(10, 4))
    ax_r, ax_f = fig.subplots(1, 2)
    for name, group in groups.items():
        group = sorted(group, key=lambda r: r[x_key])
        xs = [r[x_key] for r in group]
        ax_r.errorbar(xs, [r["r_precision"] for r in group], yerr=[r["r_precision_se"] for r in group],
                      marker="o", capsize=3, label=name or "generated")
        ax_f.plot(xs, [r["frechet_distance"] for r in group], marker="o", label=name or "generated")
    ax_r.axhline(real["r_precision"], ls="--", c="g", label=f"real images {real['r_precision']:.2f}")
    ax_r.axhline(noise["r_precision"], ls="--", c="r", label=f"noise {noise['r_precision']:.2f}")
    ax_r.set(xlabel=x_label, ylabel="R-precision (top-1 of 100)", ylim=(0, 1),
             title="Caption alignment (higher is better)")
    ax_f.axhline(real["frechet_distance"], ls="--", c="g", label=f"real images {real['frechet_distance']:.3g}")
    # Noise is usually far above the curves: then it is named in the legend, not drawn, to keep the scale readable.
    drawn = noise["frechet_distance"] <= 2 * max(r["frechet_distance"] for r in rows)
    noise_label = f"noise {noise['frechet_distance']:.3g}" + ("" if drawn else " (off scale)")
    ax_f.plot([], [], ls="--", c="r", label=noise_label)
    if drawn:
        ax_f.axhline(noise["frechet_distance"], ls="--", c="r")
    ax_f.set(xlabel=x_label, ylabel="Fréchet distance", title="Distance to real images (lower is better)")
    ax_f.set_ylim(bottom=0)
    ticks = sorted({r[x_key] for r in rows})
    for ax in (ax_r, ax_f):
        if log_x:
            ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def sample_grid(rows: list[tuple[str, list[Image.Image]]], captions: list[str], size: int = 128) -> Image.Image:
    """One row per (label, images): the first row is captioned with the prompts, the rest with their label."""
    cells, labels = [], []
    for r, (label, images) in enumerate(rows):
        cells += [im.resize((size, size), Image.Resampling.NEAREST) for im in images]
        labels += list(captions) if r == 0 else [label] * len(images)
    return grid(cells, columns=len(captions), captions=labels)


def sr_grid(upscaled: torch.Tensor, super_resolved: torch.Tensor, real: torch.Tensor,
            prompts: list[str]) -> Image.Image:
    """One row per prompt: the bicubic upscale of the 64 px image, the SR stage's output, the real image.
    All (B, 3, 256, 256) in [-1, 1]."""
    cells = [im for row in zip(to_pil(upscaled), to_pil(super_resolved), to_pil(real)) for im in row]
    labels = [label for p in prompts for label in (f"bicubic: {p}", "super-resolution", "real")]
    return grid(cells, columns=3, captions=labels)
