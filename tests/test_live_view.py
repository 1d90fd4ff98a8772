"""The page's inline frames: small, self-contained, and a schedule plot whose marker follows the step."""

from __future__ import annotations

import base64
import io
import re
import time

import pytest
import torch
from PIL import Image

from imagen import demo
from imagen.live_view import Frame, finals_html, image_uri, live_html, schedule_svg, timeline_html
from imagen.samplers import Step


def decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def _step(index: int, total: int = 3, stage: str = "base", size: int = 64) -> Step:
    x = torch.linspace(-1, 1, 3 * size * size).reshape(1, 3, size, size)  # (B, 3, H, W)
    return Step(stage, index, total, 999 - 333 * index, x, -x, x)


def test_a_64_px_frame_travels_at_64_px_as_png_and_a_256_px_one_as_webp():
    small = Frame.of(_step(0), 1.0)
    assert small.x_t.startswith("data:image/png;base64,") and decode(small.x_t).size == (64, 64)
    assert len(small.x_t) < 20_000  # a few KB, not a 256 px re-encode
    large = Frame.of(_step(0, stage="sr", size=256), 0.9)
    assert large.x0_pred.startswith("data:image/webp;base64,") and decode(large.x0_pred).size == (256, 256)
    noise = Image.fromarray((torch.rand(256, 256, 3) * 255).byte().numpy())
    assert len(image_uri(noise)) < 100_000  # as PNG this noise is ~260 KB of base64


def test_the_live_view_shows_both_images_and_marks_the_current_step_on_its_stage_plot():
    curve = [(t, (t / 999) ** 0.5) for t in range(999, -1, -111)]
    curves = {"base": curve, "sr": curve}
    frames = [Frame.of(_step(i), 1 - i / 3) for i in range(3)]
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
    frames = [Frame.of(_step(i, total=25), 1.0) for i in range(25)]
    frames += [Frame.of(_step(i, total=10, stage="sr", size=256), 0.5) for i in range(10)]
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


def test_frame_pacer_sends_every_step_while_sending_is_cheap_and_skips_when_it_is_not():
    pacer = demo.FramePacer()
    assert pacer.ready(_step(0))
    pacer.sent(time.perf_counter())  # a send that took no time
    assert pacer.ready(_step(1))
    pacer.sent(time.perf_counter() - 0.2)  # the last send took 0.2 s: the next step comes too soon
    assert not pacer.ready(_step(1)) and pacer.ready(_step(2))  # a stage's last step always goes
    time.sleep(0.21)
    assert pacer.ready(_step(1))


def test_page_handler_streams_every_step_then_keeps_the_frames_for_replay(tiny_checkpoint):
    backend = demo.ImagenDemo(tiny_checkpoint, device="cpu")
    updates = list(backend.generate_live("red apple", 4.0, 3, 5, False, 2, "ddpm", True))
    live, finals, timeline, status, seed, replay, state, _ = updates[-1]
    streamed = [u[0] for u in updates[1:-1]]
    assert [re.search(r'data-step="([^"]+)"', v).group(1) for v in streamed] == \
        ["base 1/3", "base 2/3", "base 3/3", "sr 1/2", "sr 2/2"]
    assert seed == 5 and "Done" in status and 'id="final-256"' in finals and timeline.count("<figure") == 5
    assert replay["maximum"] == 5 and replay["visible"] and len(state["frames"]) == 5
    again = backend.replay(2, state)
    assert 'data-step="base 2/3"' in again and again.count('class="visited"') == 5  # every step of both stages
    assert backend.replay(2, state) == again  # read back, not recomputed
    with pytest.raises(demo.gr.Error, match="replay step must be a whole number from 1 to 5"):
        backend.replay(9, state)
    with pytest.raises(demo.gr.Error, match="press Generate first"):
        backend.replay(1, None)


def test_frames_carry_each_words_map_and_the_guidance_parts_when_asked(tiny_checkpoint):
    backend = demo.ImagenDemo(tiny_checkpoint, device="cpu")
    updates = list(backend.generate_live("red apple", 4.0, 3, 5, False, 2, "ddpm", True, attention=True,
                                           guidance_parts=True))
    chips = updates[0][7]
    assert chips["visible"] and chips["choices"] == [("red", "0"), ("apple", "1"), ("all words", "all")]
    base, sr = updates[1][0], updates[-2][0]
    assert base.count('class="attn attn-') == 3 and "attention on “apple”" in base
    assert 'id="live-guidance"' in base and base.count('class="guide-img') == 3
    assert 'class="attn' not in sr and 'id="live-guidance"' not in sr  # the instruments watch the base stage
    state = updates[-1][6]
    assert "attention on “red”" in backend.replay(1, state)  # the replay shows the maps too
    plain = list(backend.generate_live("red apple", 4.0, 3, 5, False, 2, "ddpm", True))
    assert 'class="attn' not in plain[1][0] and not plain[0][7]["visible"]


def test_samplers_step_together_in_three_columns(tiny_checkpoint):
    backend = demo.ImagenDemo(tiny_checkpoint, device="cpu")
    updates = list(backend.compare_samplers("red apple", 4.0, 3, 1, False))
    assert len(updates) == 1 + 3 + 1  # start, one per step, done
    middle = updates[2][0]
    assert middle.count('class="sampler-col"') == 3 and middle.count("step 2 of 3") == 3
    assert re.findall(r'data-sampler="([^"]+)"', middle) == ["dpm++", "ddim", "ddpm"]
    assert "Samplers done" in updates[-1][1] and updates[-1][2] == 1
    finals = re.findall(r'<img class="pixelated" src="([^"]+)" alt="x0"', updates[-1][0])
    assert len(set(finals)) == 3  # the three samplers end on different images


def test_guidance_help_names_the_guided_steps_only_when_some_are_not():
    from imagen.config import Settings
    assert "t ≥" not in demo.guidance_info(Settings())
    assert "t ≥ 700" in demo.guidance_info(Settings(guidance_min_t=700))
