"""The release weights in checkpoints/emoji: small, loadable, used by default, and they draw.

These run the real trained model at its default settings (a few seconds on a CPU)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from imagen.consistency import downsample
from imagen.evaluation.metrics import sharpness
from imagen.evaluation.sweep import bicubic
from imagen.images import from_uint8
from imagen.pipeline import ImagenPipeline

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "emoji"
pytestmark = pytest.mark.skipif(not (SHIPPED / "pipeline.json").is_file(), reason="no shipped weights")


@pytest.fixture(scope="module")
def shipped() -> ImagenPipeline:
    return ImagenPipeline.from_pretrained(SHIPPED, device="cpu")


def test_release_is_fp16_safetensors_within_40_mb_with_a_model_card():
    files = sorted(SHIPPED.rglob("*.safetensors"))
    assert [f.parent.name for f in files] == ["base", "sr"]
    assert sum(f.stat().st_size for f in files) <= 40e6
    for f in files:
        with safe_open(f, "pt") as weights:
            assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert "CC-BY 4.0" in card and "CC BY-SA 4.0" in card and not re.search(r"@[A-Z_]+@", card)


def _share(image: Image.Image, condition) -> float:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return float(condition(rgb[..., 0], rgb[..., 1], rgb[..., 2]).mean())


@pytest.mark.slow
def test_generate_command_uses_the_shipped_weights_by_default(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "imagen.generate", "red heart, twemoji style",
                           "grinning face, twemoji style", "--no-sr", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    heart, face = (Image.open(out / "64" / f"{i:04d}.png") for i in range(2))
    # a trained model draws a red heart mostly red and a face mostly yellow, on white
    assert _share(heart, lambda r, g, b: (r > 150) & (g < 110) & (b < 110)) > 0.15
    assert _share(face, lambda r, g, b: (r > 180) & (g > 130) & (b < 110)) > 0.15
    assert _share(heart, lambda r, g, b: (r > 150) & (g > 130) & (b < 110)) < 0.05  # not yellow


def test_sr_stage_is_sharper_than_a_bicubic_upscale(shipped):
    out = shipped(["red apple, twemoji style", "pizza, twemoji style"], seed=0)
    small = from_uint8(np.stack([np.asarray(im) for im in out.images_64]))
    large = from_uint8(np.stack([np.asarray(im) for im in out.images_256]))
    assert large.shape[-1] == 256
    assert sharpness(large) > 1.2 * sharpness(bicubic(small, 256))
    # and it keeps the picture: downsampled, the SR output stays close to its 64 px input
    assert (bicubic(large, 64) - small).abs().mean() < 0.15


@pytest.mark.slow
def test_low_frequency_consistency_keeps_the_64_px_image_and_the_sharpness(shipped):
    prompts = ["red apple, twemoji style", "grinning face, openmoji style"]
    small = None
    for step in shipped.generate(prompts, seed=0, sr=False):
        small = step.x_prev.clamp(-1, 1)
    large = {on: list(shipped.super_resolve(small, prompts, seed=0, sr_consistency=on))[-1].x_prev.clamp(-1, 1)
             for on in (False, True)}
    drift = {on: float((downsample(x, 4) - small).abs().mean()) for on, x in large.items()}
    assert drift[True] < 0.02 and drift[True] < 0.5 * drift[False]
    assert sharpness(large[True]) > 1.2 * sharpness(bicubic(small, 256))  # it still adds detail


def test_attention_of_the_trained_model_tells_the_words_of_a_two_concept_prompt_apart(shipped):
    from imagen.instruments import word_maps, words
    prompt = "red apple, grinning face"
    last = list(shipped.generate(prompt, seed=0, sr=False, attention=True))[-1]
    maps = word_maps(last.attention[0], words(shipped.text_encoder, prompt))
    assert list(maps) == ["red", "apple", "grinning", "face", "all"]
    # Normalised to the same total, two words' maps put their attention in different places.
    a, b = (maps[w] / maps[w].sum() for w in ("apple", "grinning"))
    assert (a - b).abs().sum() > 0.1
    mask = shipped.text_encoder.encode([prompt]).text_mask[0]
    assert last.attention[0, ~mask].abs().max() == 0 and last.attention.sum(1).max() <= 1 + 1e-4


def test_restoring_a_real_image_keeps_it_from_low_noise_and_not_from_pure_noise(shipped):
    from imagen.data.emoji import emoji_items
    prompt = "red apple, twemoji style"
    loader = next(loader for loader, captions in emoji_items() if captions[0] == prompt)
    real = from_uint8(np.array(loader()[64])[None])
    steps = shipped.defaults.steps
    low = list(shipped.restore(real, prompt, 466))
    high = list(shipped.restore(real, prompt, 999))
    assert low[0].timestep <= 466 and len(low) < len(high) == steps  # starts part-way, takes the rest
    assert high[0].timestep == 999
    error = lambda out: (out[-1].x_prev - real).square().mean().item()  # noqa: E731
    # from t = 466 the trained model finishes the apple it is given; from pure noise it draws its
    # own, which is not the real image
    assert error(low) < 0.05 < error(high), (error(low), error(high))
    with pytest.raises(ValueError, match="start_timestep"):
        next(shipped.restore(real, prompt, 1000))


def test_a_colour_the_data_never_showed_on_an_object_is_the_colour_drawn(shipped):
    """Held-out (colour, name) pairs, asked the way people type them: the asked colour is the
    drawing's dominant hue, though no training caption ever put that colour on that object."""
    from imagen.data.colours import dominant_hue, is_held_out
    asked = [("blue", "banana"), ("green", "cat face"), ("pink", "cat face")]
    assert all(is_held_out(colour, name) for colour, name in asked)
    images = shipped([f"{colour} {name}" for colour, name in asked], seed=0, sr=False).images_64
    drawn = dominant_hue(from_uint8(np.stack([np.asarray(im) for im in images])))
    assert drawn == [colour for colour, _ in asked]
