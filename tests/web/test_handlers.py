"""The handlers behind the page and its API, on a tiny checkpoint, without a server."""

import json
import re

import gradio as gr
import pytest

from imagen.config import Settings
from imagen.web.handlers import ImagenDemo, guidance_info


def test_page_handler_streams_every_step_then_keeps_the_frames_for_replay(tiny_checkpoint):
    backend = ImagenDemo(tiny_checkpoint, device="cpu")
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
    with pytest.raises(gr.Error, match="replay step must be a whole number from 1 to 5"):
        backend.replay(9, state)
    with pytest.raises(gr.Error, match="press Generate first"):
        backend.replay(1, None)


def test_frames_carry_each_words_map_and_the_guidance_parts_when_asked(tiny_checkpoint):
    backend = ImagenDemo(tiny_checkpoint, device="cpu")
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
    backend = ImagenDemo(tiny_checkpoint, device="cpu")
    updates = list(backend.compare_samplers("red apple", 4.0, 3, 1, False))
    assert len(updates) == 1 + 3 + 1  # start, one per step, done
    middle = updates[2][0]
    assert middle.count('class="sampler-col"') == 3 and middle.count("step 2 of 3") == 3
    assert re.findall(r'data-sampler="([^"]+)"', middle) == ["dpm++", "ddim", "ddpm"]
    assert "Samplers done" in updates[-1][1] and updates[-1][2] == 1
    finals = re.findall(r'<img class="pixelated" src="([^"]+)" alt="x0"', updates[-1][0])
    assert len(set(finals)) == 3  # the three samplers end on different images


def test_guidance_help_names_the_guided_steps_only_when_some_are_not():
    assert "t ≥" not in guidance_info(Settings())
    assert "t ≥ 700" in guidance_info(Settings(guidance_min_t=700))


def test_a_broken_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "pipeline.json").write_text("{ not json")
    with pytest.raises(gr.Error, match="could not be loaded"):
        next(ImagenDemo(tmp_path).generate("red apple", 4.0, 3, 0, False, 2, "dpm++", True))


def test_the_style_control_draws_as_typed_where_the_checkpoint_knows_what_a_bare_name_means(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "pipeline.json").read_text())
    config["styles"] = ["openmoji style", "twemoji style"]
    (tiny_checkpoint / "pipeline.json").write_text(json.dumps(config))
    choices, value, label = ImagenDemo(tiny_checkpoint).style_control()
    assert value == "openmoji style" and choices[-1] == ("as typed", "as typed")  # bare names blend: add one
    config["default_style"] = "openmoji style"
    (tiny_checkpoint / "pipeline.json").write_text(json.dumps(config))
    choices, value, label = ImagenDemo(tiny_checkpoint).style_control()
    assert value == "as typed" and [v for _, v in choices] == ["as typed", "openmoji style", "twemoji style"]
    assert "drawn in openmoji style" in label
