"""The page's inline frames: small, self-contained, and a schedule plot whose marker follows the step."""

from __future__ import annotations

import base64
import io
import re

import torch
from PIL import Image

from imagen.web.live_view import Frame, finals_html, image_uri, live_html, schedule_svg, timeline_html
from tests.tiny import fake_step


def decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_a_64_px_frame_travels_at_64_px_as_png_and_a_256_px_one_as_webp():
    small = Frame.of(fake_step(0))
    assert small.x_t.startswith("data:image/png;base64,") and decode(small.x_t).size == (64, 64)
    assert len(small.x_t) < 20_000  # a few KB, not a 256 px re-encode
    large = Frame.of(fake_step(0, stage="sr", size=256, noise_level=0.9))
    assert large.x0_pred.startswith("data:image/webp;base64,") and decode(large.x0_pred).size == (256, 256)
    noise = Image.fromarray((torch.rand(256, 256, 3) * 255).byte().numpy())
    assert len(image_uri(noise)) < 100_000  # as PNG this noise is ~260 KB of base64


def test_the_live_view_shows_both_images_and_marks_the_current_step_on_its_stage_plot():
    curve = [(t, (t / 999) ** 0.5) for t in range(999, -1, -111)]
    curves = {"base": curve, "sr": curve}
    frames = [Frame.of(fake_step(i, noise_level=1 - i / 3)) for i in range(3)]
    views = [live_html(f, frames[:i + 1], curves) for i, f in enumerate(frames)]
    for i, view in enumerate(views):
        assert view.count("<img") == 2 and f'data-step="base {i + 1}/3"' in view
        assert view.count('class="now"') == 1  # only the current stage's plot has a marker
        assert view.count('class="visited"') == i + 1
    marks = [float(re.search(r'<line x1="([\d.]+)"[^>]*class="now-line"', v).group(1)) for v in views]
    assert marks == sorted(marks) and len(set(marks)) == 3  # the marker moves right, towards t = 0
    assert "timestep 999" in views[0] and "noise level σ = 1.00" in views[0]
    empty = live_html(None, [], curves, "Encoding the prompt…")
    assert "<img" not in empty and "Encoding the prompt" in empty and "now-line" not in empty


def test_schedule_plot_spans_the_whole_schedule():
    curve = [(999, 1.0), (500, 0.7), (0, 0.0)]
    svg = schedule_svg(curve, [], None, "base stage")
    assert svg.startswith("<svg") and "t = 999" in svg and "t = 0" in svg and 'class="now"' not in svg
    assert schedule_svg([], [], None, "x") == ""


def test_timeline_keeps_a_few_steps_per_stage_and_finals_carry_their_own_download():
    frames = [Frame.of(fake_step(i, total=25)) for i in range(25)]
    frames += [Frame.of(fake_step(i, total=10, stage="sr", size=256, noise_level=0.5)) for i in range(10)]
    html = timeline_html(frames, per_stage=5)
    labels = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert labels[:5] == ["base 1/25", "base 7/25", "base 13/25", "base 19/25", "base 25/25"]
    assert labels[5] == "sr 1/10" and labels[-1] == "sr 10/10" and len(labels) == 10
    image = Image.new("RGB", (256, 256), "red")
    finals = finals_html(Image.new("RGB", (64, 64), "red"), image, seed=7)
    assert 'download="imagen-seed7-256px.png"' in finals and 'id="final-64"' in finals
    uri = re.search(r'id="final-256"><img class="final-img" src="([^"]+)"', finals).group(1)
    assert decode(uri).size == (256, 256)
    assert 'id="final-256"' not in finals_html(Image.new("RGB", (64, 64)), None, seed=0)  # SR off
