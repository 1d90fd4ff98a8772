"""app.py's page built as `python app.py` builds it at start-up, without serving it: what it shows
when the checkpoint is broken or its defaults lie beyond the usual slider ends."""

import json
import re
import runpy
from pathlib import Path

import gradio as gr
import pytest

from imagen.config import Settings

ROOT = Path(__file__).resolve().parents[1]


BROKEN_CONFIGS = {
    "a list": ("[1, 2, 3]", "expected a JSON object"),
    "null": ("null", "expected a JSON object"),
    "steps as text": ('{"defaults": {"steps": "abc"}}', "defaults: steps must be a whole number"),
    "steps out of range": ('{"defaults": {"steps": 5000}}', "defaults: steps must be a whole number"),
}


def _app_page(checkpoint: Path, monkeypatch) -> dict:
    """Build app.py's page as `python app.py` does at start-up, without serving it."""
    monkeypatch.setenv("IMAGEN_CHECKPOINT", str(checkpoint))
    return runpy.run_path(str(ROOT / "app.py"))


@pytest.mark.parametrize("name", BROKEN_CONFIGS)
def test_a_wrong_pipeline_json_still_opens_the_page_and_it_says_what_is_wrong(tiny_checkpoint, monkeypatch, name):
    text, problem = BROKEN_CONFIGS[name]
    (tiny_checkpoint / "pipeline.json").write_text(text)
    page = _app_page(tiny_checkpoint, monkeypatch)  # once an uncaught error at start-up
    status = page["status"].value
    assert f"The checkpoint at {tiny_checkpoint} cannot be used" in status and problem in status
    assert "Type a prompt" not in status
    assert page["steps"].value == Settings().steps  # the page falls back to the package's defaults
    with pytest.raises(gr.Error, match="could not be loaded: .*" + re.escape(problem)):
        next(page["backend"].generate("red apple", 4.0, 3, 0, False, 2, "dpm++", True))


def test_defaults_beyond_the_usual_slider_ends_widen_them_so_generate_works_at_its_defaults(
        tiny_checkpoint, monkeypatch):
    config = json.loads((tiny_checkpoint / "pipeline.json").read_text())
    config["defaults"].update(steps=150, guidance_scale=20.0, sr=False)
    (tiny_checkpoint / "pipeline.json").write_text(json.dumps(config))
    page = _app_page(tiny_checkpoint, monkeypatch)
    assert (page["steps"].maximum, page["guidance_scale"].maximum) == (150, 20.0)
    frames = page["backend"].generate("red apple", page["guidance_scale"].value, page["steps"].value, 0, False,
                                      page["sr_steps"].value, page["sampler"].value, page["sr"].value)
    assert next(frames)[5].startswith("Encoding the prompt")  # the settings were accepted
