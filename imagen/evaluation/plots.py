"""Figures of an evaluation run: metric-versus-setting curves and sample grids."""

from __future__ import annotations

from pathlib import Path

import torch

# The Figure API, not pyplot: no global figure state and no display backend.
from matplotlib.figure import Figure
from PIL import Image

from ..images import grid, to_pil


def plot_sweep(rows: list[dict], x_key: str, x_label: str, baselines: dict, path: Path,
               group_key: str | None = None, log_x: bool = False) -> None:
    """R-precision against random and against colour-matched captions, and Fréchet distance, against
    one setting, one line per value of `group_key` (e.g. per sampler). The real images (ceiling),
    colour blobs and noise (floors) of `baselines` are dashed."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row[group_key]) if group_key else "", []).append(row)
    fig = Figure(figsize=(14, 4))
    ax_r, ax_c, ax_f = fig.subplots(1, 3)
    for name, group in groups.items():
        group = sorted(group, key=lambda r: r[x_key])
        xs = [r[x_key] for r in group]
        for ax, key in ((ax_r, "r_precision"), (ax_c, "r_precision_colour")):
            ax.errorbar(xs, [r[key] for r in group], yerr=[r[f"{key}_se"] for r in group],
                        marker="o", capsize=3, label=name or "generated")
        ax_f.plot(xs, [r["frechet_distance"] for r in group], marker="o", label=name or "generated")
    lines = (("real", "g", "real images"), ("blob", "orange", "colour blobs"), ("noise", "r", "noise"))
    for ax, key, title in ((ax_r, "r_precision", "vs 99 random captions"),
                           (ax_c, "r_precision_colour", "vs the 99 nearest in colour")):
        for base, colour, label in lines:
            if base in baselines:
                ax.axhline(baselines[base][key], ls="--", c=colour, label=f"{label} {baselines[base][key]:.2f}")
        ax.set(xlabel=x_label, ylabel="R-precision (top-1 of 100)", ylim=(0, 1), title=f"Caption alignment {title}")
    real, noise = baselines["real"], baselines["noise"]
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
    for ax in (ax_r, ax_c, ax_f):
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
