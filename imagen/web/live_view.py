"""What the web page draws while the model runs: each step's x_t and predicted x0 as small inline
images, and the noise schedule with a marker at the current step.

Everything here is plain HTML with data URIs, sent as one message per step: no file is written and
the browser makes no second request for a frame. A 64 px frame travels at 64 px (a PNG of a few KB)
and the page scales it up with `image-rendering: pixelated`; larger frames travel as WebP.

    frame = Frame.of(step, sigma, schedule)      # encode once, keep for replay
    html = live_html(frame, frames_of_stage)     # the live view: x_t, x0 and the schedule plot
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from ..images import heat_overlay, to_pil
from ..instruments import word_maps
from ..samplers import Step, evenly_spaced
from .status import STAGE_TITLES

if TYPE_CHECKING:
    from ..pipeline import ImagenPipeline

WEBP_QUALITY = 60  # the SR stage's 256 px frames: ~30 KB each as WebP when noisy, ~200 KB as PNG
VIEW_SIZE = 256  # CSS pixels each image is shown at, whatever its own size
PLOT_W, PLOT_H, PAD, TOP = 240, 110, 22, 16  # the schedule plot, in SVG units
SCHEDULE_POINTS = 64  # points of each stage's noise-schedule curve


def image_uri(image: Image.Image) -> str:
    """A data URI for `image`: PNG (lossless) up to 64 px, WebP above, where noise makes PNG large."""
    buffer = io.BytesIO()
    if max(image.size) <= 64:
        image.save(buffer, format="PNG", compress_level=1)  # fast; a 64 px noise frame is ~12 KB anyway
        kind = "png"
    else:
        image.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=0)
        kind = "webp"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def tensor_uri(x: torch.Tensor) -> str:
    """The first image of a (B, 3, H, W) batch in [-1, 1], as a data URI at its own size."""
    return image_uri(to_pil(x[:1])[0])


@dataclass(frozen=True)
class Frame:
    """One step, encoded once: what the live view shows and what the replay slider shows again."""

    stage: str
    index: int
    total: int
    timestep: int
    sigma: float  # sqrt(1 - alpha_bar_t), the noise level of x_t
    x_t: str  # data URI
    x0_pred: str  # data URI
    # With the attention instrument: (word, share of attention, data URI of its map over x0) per word.
    attention: tuple[tuple[str, float, str], ...] | None = None
    # With the guidance instrument: data URIs of x0 without the caption, with it, and w x their difference
    # (contrast stretched to its own largest value, grey where the text changes nothing).
    guidance: tuple[str, str, str] | None = None

    @classmethod
    def of(cls, step: Step, words: list[tuple[str, list[int]]] | None = None, guidance_scale: float = 1.0) -> Frame:
        """Encode a step; `words` (from instruments.words) turns its attention into one map per word."""
        attention = guidance = None
        if step.attention is not None and words is not None:
            maps = word_maps(step.attention[0], words)
            attention = tuple((w, float(m.mean()), image_uri(heat_overlay(step.x0_pred[0], m)))
                              for w, m in maps.items())
        if step.x0_uncond is not None and step.x0_cond is not None:
            push = guidance_scale * (step.x0_cond - step.x0_uncond)
            push = push / push.abs().amax().clamp(min=0.05)  # contrast stretched; grey = no change
            guidance = (tensor_uri(step.x0_uncond), tensor_uri(step.x0_cond), tensor_uri(push))
        return cls(step.stage, step.index, step.total, int(step.timestep), step.noise_level,
                   tensor_uri(step.x_t), tensor_uri(step.x0_pred), attention, guidance)

    @property
    def label(self) -> str:
        return f"{self.stage} {self.index + 1}/{self.total}"


def schedule_curve(pipe: ImagenPipeline, stage: str, points: int = SCHEDULE_POINTS) -> list[tuple[int, float]]:
    """(t, sigma_t) along a stage's noise schedule, from t = T - 1 down to 0: the page's plot."""
    last = pipe.num_timesteps(stage) - 1
    ts = sorted({round(last * k / (points - 1)) for k in range(points)}, reverse=True)
    return [(t, pipe.noise_level(stage, t)) for t in ts]


def schedule_svg(curve: list[tuple[int, float]], visited: list[Frame], current: Frame | None, title: str) -> str:
    """The noise level sigma against the timestep t (T on the left, 0 on the right, the direction
    sampling goes), the timesteps this run visits as dots, and the current one as a larger marker.
    curve: (t, sigma) pairs of the stage's training schedule."""
    if not curve:
        return ""
    t_max = max(t for t, _ in curve) or 1

    def x(t: float) -> float:
        return PAD + (1 - t / t_max) * (PLOT_W - PAD - 6)

    def y(sigma: float) -> float:
        return TOP + (1 - sigma) * (PLOT_H - PAD - TOP)

    line = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in curve)
    dots = "".join(f'<circle cx="{x(f.timestep):.1f}" cy="{y(f.sigma):.1f}" r="2.2" class="visited"/>'
                   for f in visited)
    marker = ""
    if current is not None:
        marker = (f'<line x1="{x(current.timestep):.1f}" x2="{x(current.timestep):.1f}" y1="{TOP}" '
                  f'y2="{PLOT_H - PAD:.1f}" class="now-line"/>'
                  f'<circle cx="{x(current.timestep):.1f}" cy="{y(current.sigma):.1f}" r="5" class="now" '
                  f'data-step="{current.index}" data-timestep="{current.timestep}"/>')
    axis_y = PLOT_H - PAD
    return (
        f'<svg class="schedule" viewBox="0 0 {PLOT_W} {PLOT_H}" role="img" '
        f'aria-label="noise level against timestep, {html.escape(title)}">'
        f'<text x="{PAD}" y="{PLOT_H - 4}" class="axis">t = {t_max}</text>'
        f'<text x="{PLOT_W - 6}" y="{PLOT_H - 4}" class="axis" text-anchor="end">t = 0</text>'
        f'<text x="2" y="{TOP + 3}" class="axis">σ=1</text><text x="2" y="{axis_y:.0f}" class="axis">0</text>'
        f'<line x1="{PAD}" y1="{axis_y}" x2="{PLOT_W - 6}" y2="{axis_y}" class="frame"/>'
        f'<line x1="{PAD}" y1="{TOP}" x2="{PAD}" y2="{axis_y}" class="frame"/>'
        f'<polyline points="{line}" class="curve"/>{dots}{marker}'
        f'<text x="{PLOT_W / 2:.0f}" y="10" class="title" text-anchor="middle">noise level σ, '
        f'{html.escape(title)}</text>'
        "</svg>"
    )


def live_html(frame: Frame | None, stage_frames: list[Frame], curves: dict[str, list[tuple[int, float]]],
              note: str = "") -> str:
    """The live view: x_t and x0 of `frame` side by side, and one schedule plot per stage with the
    steps of `stage_frames` (the run's frames so far, or all of them when replaying) marked."""
    if frame is None:
        images = ('<div class="live-img empty">x_t</div><div class="live-img empty">x̂₀</div>')
        caption = html.escape(note or "The noisy image x_t and the model's clean prediction x̂₀ appear here.")
    else:
        pixelated = " pixelated" if "image/png" in frame.x_t[:16] else ""
        images = (f'<figure><img class="live-img{pixelated}" id="live-x-t" src="{frame.x_t}" alt="x_t"'
                  f' data-step="{frame.label}"/><figcaption>noisy image x_t</figcaption></figure>'
                  f'<figure><img class="live-img{pixelated}" id="live-x0" src="{frame.x0_pred}" alt="x0"'
                  f' data-step="{frame.label}"/><figcaption>predicted clean image x̂₀</figcaption></figure>'
                  + attention_figure(frame))
        caption = html.escape(f"{STAGE_TITLES[frame.stage]}: step {frame.index + 1} of {frame.total}, "
                              f"timestep {frame.timestep}, noise level σ = {frame.sigma:.2f}" + (f". {note}" if note
                                                                                               else ""))
    plots = "".join(
        schedule_svg(curve, [f for f in stage_frames if f.stage == stage],
                     frame if frame is not None and frame.stage == stage else None, STAGE_TITLES[stage])
        for stage, curve in curves.items())
    return (f'<div class="live" data-stage="{frame.stage if frame else ""}">'
            f'<div class="live-images">{images}</div>{guidance_row(frame)}'
            f'<div class="live-caption">{caption}</div><div class="schedules">{plots}</div></div>')


def attention_figure(frame: Frame) -> str:
    """Every word's map over x0, stacked; the page's CSS shows the one whose chip is picked
    (#live[data-word=k]), "all" until one is, so picking a word needs no round trip."""
    if not frame.attention:
        return ""
    layers = []
    for k, (word, share, uri) in enumerate(frame.attention):
        key = "all" if word == "all" else str(k)
        label = "all words" if word == "all" else f"“{word}”"
        layers.append(f'<div class="attn attn-{key}"><img class="live-img pixelated" src="{uri}" alt="attention"/>'
                      f'<figcaption>attention on {html.escape(label)}: {share:.1%} of it</figcaption></div>')
    return f'<figure class="attention" id="live-attention">{"".join(layers)}</figure>'


def guidance_row(frame: Frame | None) -> str:
    """Classifier-free guidance as pictures: what the model draws without the caption, with it, and
    the push guidance adds (w times the difference; grey is no change)."""
    if frame is None or frame.guidance is None:
        return ""
    titles = ("x̂₀ without the caption", "x̂₀ with the caption", "what the text adds (w × difference, stretched)")
    cells = "".join(f'<figure><img class="guide-img pixelated" src="{uri}" alt="{title}"/>'
                    f'<figcaption>{title}</figcaption></figure>' for uri, title in zip(frame.guidance, titles))
    return f'<div class="guidance" id="live-guidance">{cells}</div>'


def timeline_html(frames: list[Frame], per_stage: int = 5) -> str:
    """A few evenly spaced steps of each stage, last included: x_t over x0, small."""
    cells = []
    for stage in dict.fromkeys(f.stage for f in frames):
        of_stage = [f for f in frames if f.stage == stage]
        for i in evenly_spaced(len(of_stage), per_stage):
            f = of_stage[i]
            pixelated = " pixelated" if "image/png" in f.x_t[:16] else ""
            cells.append(f'<figure class="tl"><img class="{pixelated.strip()}" src="{f.x_t}" alt="x_t"/>'
                         f'<img class="{pixelated.strip()}" src="{f.x0_pred}" alt="x0"/>'
                         f'<figcaption>{html.escape(f.label)}</figcaption></figure>')
    return f'<div class="timeline">{"".join(cells)}</div>' if cells else ""


def finals_html(image_64: Image.Image | None, image_256: Image.Image | None, seed: int) -> str:
    """The final images, each with a download link (the data URI itself: nothing is stored)."""
    cells = []
    for image, name, title in ((image_64, "64", "Final 64 px (base stage)"),
                               (image_256, "256", "Final 256 px (super-resolution)")):
        if image is None:
            continue
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        uri = f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"
        pixelated = " pixelated" if name == "64" else ""
        cells.append(f'<figure class="final" id="final-{name}"><img class="final-img{pixelated}" src="{uri}" '
                     f'alt="{title}" width="{VIEW_SIZE}" height="{VIEW_SIZE}"/><figcaption>{title} · '
                     f'<a download="imagen-seed{seed}-{name}px.png" href="{uri}">download</a></figcaption></figure>')
    return f'<div class="finals">{"".join(cells)}</div>'


@dataclass
class SamplerColumn:
    """One sampler of the side-by-side comparison, as far as it has got."""

    name: str
    steps: int
    frame: Frame | None = None
    seconds: float = 0.0  # time spent in this sampler's own steps so far


def samplers_html(columns: list[SamplerColumn]) -> str:
    """The samplers side by side, each at its latest step: x_t over x0, its step and its time."""
    cells = []
    for c in columns:
        if c.frame is None:
            images, where = '<div class="live-img empty"></div>', "waiting"
        else:
            images = (f'<img class="pixelated" src="{c.frame.x_t}" alt="x_t"/>'
                      f'<img class="pixelated" src="{c.frame.x0_pred}" alt="x0"/>')
            where = f"step {c.frame.index + 1} of {c.frame.total}, t = {c.frame.timestep}"
        cells.append(f'<figure class="sampler-col" data-sampler="{html.escape(c.name)}">'
                     f'<div class="name">{html.escape(c.name)}</div>{images}'
                     f'<figcaption>{where} · {c.seconds:.2f} s</figcaption></figure>')
    return f'<div class="samplers"><div class="sampler-columns">{"".join(cells)}</div></div>'


CSS = f"""
.live-images {{ display: flex; gap: 10px; }}
.finals, .guidance, .sampler-columns {{ display: flex; gap: 12px; flex-wrap: wrap; }}
.live figure, .finals figure, .samplers figure {{ margin: 0; }}
.live-images figure {{ flex: 1 1 0; max-width: {VIEW_SIZE}px; min-width: 0; }}
.live-img {{ width: 100%; aspect-ratio: 1; display: block; background: #f3f3f3; }}
.final-img {{ width: {VIEW_SIZE}px; height: {VIEW_SIZE}px; display: block; background: #f3f3f3; }}
.guide-img {{ width: 150px; height: 150px; display: block; }}
.attn {{ display: none; }}
#live:not([data-word]) .attn-all, #live[data-word="all"] .attn-all {{ display: block; }}
{"".join(f'#live[data-word="{k}"] .attn-{k} {{ display: block; }}' for k in range(64))}
.sampler-col {{ text-align: center; }}
.sampler-col img {{ width: 192px; height: 192px; display: block; }}
.sampler-col .name {{ font-weight: 600; }}
.live-img.empty {{ display: flex; align-items: center; justify-content: center; color: #999; font-size: 28px; }}
.pixelated {{ image-rendering: pixelated; }}
.live figcaption, .finals figcaption, .timeline figcaption {{ font-size: 12px; color: #555; }}
.live-caption {{ font-size: 13px; margin: 4px 0; min-height: 1.2em; }}
.schedules {{ display: flex; gap: 8px; }}
.schedule {{ width: {PLOT_W}px; height: {PLOT_H}px; }}
.schedule .curve {{ fill: none; stroke: #888; stroke-width: 1.5; }}
.schedule .frame {{ stroke: #bbb; stroke-width: 1; }}
.schedule .visited {{ fill: #f59e0b; }}
.schedule .now {{ fill: #dc2626; }}
.schedule .now-line {{ stroke: #dc2626; stroke-width: 1; stroke-dasharray: 3 2; }}
.schedule .axis {{ font-size: 9px; fill: #666; }}
.schedule .title {{ font-size: 10px; fill: #333; }}
.timeline {{ display: flex; gap: 6px; flex-wrap: wrap; }}
.timeline figure {{ margin: 0; display: flex; flex-direction: column; align-items: center; }}
.timeline img {{ width: 72px; height: 72px; }}
"""
