"""Evaluation: the metrics on synthetic inputs, the image encoder on a tiny dataset of coloured
shapes, and the command end to end on a tiny random pipeline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from imagen.data import load_dataset
from imagen.data.prepared import build, square_sizes
from imagen.device import fast_bfloat16
from imagen.evaluate import main
from imagen.evaluation import image_encoder
from imagen.evaluation.colour import colour_blobs, colour_matched_distractors, ink_features
from imagen.evaluation.image_encoder import ImageEncoderConfig, load_or_train
from imagen.evaluation.metrics import frechet_distance, r_precision, r_precision_against, sharpness
from imagen.evaluation.scorer import Scorer, evaluation_index, noise_images
from imagen.evaluation.sweep import base_settings, bicubic
from imagen.images import from_uint8

COLOURS = {"red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 80, 220), "yellow": (240, 200, 30)}
SHAPES = ("circle", "square", "triangle", "cross")
TINY_ENCODER = ImageEncoderConfig(channels=(8, 16, 32), epochs=40, batch_size=16, lr=3e-3, holdout=0.0)


def shape_image(colour: str, shape: str, big: bool) -> Image.Image:
    image = Image.new("RGB", (256, 256), "white")
    draw, c, r = ImageDraw.Draw(image), 128, 100 if big else 50
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=fill)
    elif shape == "square":
        draw.rectangle((c - r, c - r, c + r, c + r), fill=fill)
    elif shape == "triangle":
        draw.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], fill=fill)
    else:
        draw.rectangle((c - r, c - r // 3, c + r, c + r // 3), fill=fill)
        draw.rectangle((c - r // 3, c - r, c + r // 3, c + r), fill=fill)
    return image


def shapes() -> list[tuple[Image.Image, list[str]]]:
    """32 images, each with a main caption ("big red circle") and a shorter variant ("red circle")."""
    return [(shape_image(colour, shape, big), [f"{'big' if big else 'small'} {colour} {shape}", f"{colour} {shape}"])
            for colour in COLOURS for shape in SHAPES for big in (True, False)]


def shapes_folder_at(folder: Path) -> Path:
    """shapes() as a folder of images with a metadata.jsonl (the imagefolder layout)."""
    folder.mkdir()
    with open(folder / "metadata.jsonl", "w") as f:
        for i, (image, captions) in enumerate(shapes()):
            image.save(folder / f"{i:02d}.png")
            f.write(json.dumps({"file_name": f"{i:02d}.png", "text": captions[0]}) + "\n")
    return folder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine a second thread makes the
    tiny cascade ~40x slower (its workers wait on each other); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory):
    items = [(lambda im=im: square_sizes(im), caps) for im, caps in shapes()]
    return build(tmp_path_factory.mktemp("data") / "shapes", items, len(items), {"source": "test"}, "shapes")


# ---------------------------------------------------------------- metrics


def test_r_precision_is_one_for_matching_embeddings_and_chance_for_random():
    captions = torch.nn.functional.normalize(torch.randn(500, 32), dim=-1)
    index = torch.arange(500)
    assert r_precision(captions, captions, index, torch.Generator().manual_seed(0)) == 1.0
    noise = torch.randn(500, 32)
    chance = np.mean([r_precision(noise, captions, index, torch.Generator().manual_seed(s)) for s in range(4)])
    assert 0.0 <= chance < 0.04  # 1 in 100 expected


def test_r_precision_never_draws_the_true_caption_as_a_distractor():
    # With a pool of 2, the only distractor is the other caption, which is always worse.
    captions = torch.eye(2)
    assert r_precision(captions, captions, torch.tensor([0, 1]), torch.Generator(), n_distractors=99) == 1.0


def test_frechet_distance_is_zero_for_a_set_with_itself_and_grows_with_a_shift():
    feats = np.random.default_rng(0).normal(size=(400, 16))
    assert abs(frechet_distance(feats, feats)) < 1e-6
    d1, d2 = frechet_distance(feats, feats + 0.5), frechet_distance(feats, feats + 1.0)
    assert d1 == pytest.approx(16 * 0.25, rel=1e-4) and d2 == pytest.approx(16 * 1.0, rel=1e-4)
    assert frechet_distance(feats, feats * 2) > 1.0  # a wider spread counts too


def test_sharpness_ranks_a_bicubic_upscale_below_the_sharp_original():
    sharp = from_uint8(np.array(shape_image("red", "cross", True))[None])  # (1, 3, 256, 256)
    assert sharpness(bicubic(bicubic(sharp, 64), 256)) < 0.8 * sharpness(sharp)


def test_sweeps_vary_one_setting_around_the_defaults():
    from imagen.config import Settings
    centre, settings = base_settings(Settings(guidance_scale=4.0, steps=25, sampler="dpm++", threshold=0.7),
                                     [1.0, 4.0], [10, 25], ["dpm++", "ddim"], [0.95, 0.7], [0, 450])
    assert centre == {"guidance_scale": 4.0, "steps": 25, "sampler": "dpm++", "threshold": 0.7, "guidance_min_t": 0}
    assert {tuple(s.values()) for s in settings} == {
        (1.0, 25, "dpm++", 0.7, 0), (4.0, 25, "dpm++", 0.7, 0), (4.0, 10, "dpm++", 0.7, 0),
        (4.0, 10, "ddim", 0.7, 0), (4.0, 25, "ddim", 0.7, 0), (4.0, 25, "dpm++", 0.95, 0),
        (4.0, 25, "dpm++", 0.7, 450)}


def test_ink_features_read_colour_and_coverage_and_blobs_redraw_them():
    images = np.stack([np.array(shape_image("red", "square", big=True).resize((64, 64), Image.Resampling.NEAREST)),
                       np.full((64, 64, 3), 255, np.uint8)])
    feats = ink_features(images)
    assert np.allclose(feats[0, :3], np.array(COLOURS["red"]) / 255, atol=0.01)
    assert feats[0, 3] == pytest.approx((201 / 256) ** 2, abs=0.03)  # the square covers ~62% of the image
    assert np.allclose(feats[1], [1, 1, 1, 0])  # blank: white, no ink
    blobs = colour_blobs(feats)
    assert blobs.shape == (2, 3, 64, 64)
    assert np.allclose(ink_features((np.array(blobs.permute(0, 2, 3, 1)) + 1) * 127.5)[:, 3], feats[:, 3], atol=0.02)


def test_colour_matched_distractors_are_the_nearest_colours_of_other_concepts():
    # pool: 3 reds (two variants of one concept), 2 blues, 1 green; k=2 distractors each
    feats = np.array([[1, 0, 0, .3], [.98, 0, 0, .3], [.9, .05, 0, .3], [0, 0, 1, .3], [0, 0, .9, .3], [0, 1, 0, .3]])
    concepts = ["apple", "apple", "heart", "whale", "gem", "leaf"]
    got = colour_matched_distractors(feats, torch.tensor([0, 3]), concepts, n_distractors=2)
    assert got[0].tolist() == [2, 4]  # the other red, then the nearest rest; never itself or its variant (1)
    assert got[1].tolist()[0] == 4  # the other blue first
    # the judge's verdict against them: an image embedding matching its caption wins, one matching a distractor loses
    pool = torch.eye(6)
    assert r_precision_against(pool[[0, 3]], pool, torch.tensor([0, 3]), got) == 1.0
    assert r_precision_against(pool[[2, 4]], pool, torch.tensor([0, 3]), got) == 0.0


# ---------------------------------------------------------------- image encoder


def test_image_encoder_learns_captions_of_real_images_and_is_cached(shapes_dataset, text_encoder):
    encoder, record = load_or_train(shapes_dataset, text_encoder, TINY_ENCODER, progress=False)
    sentences, offsets = image_encoder.caption_embeddings(shapes_dataset, text_encoder)
    pool, index = sentences[offsets[:-1]], torch.arange(len(shapes_dataset))
    _, real = encoder.encode(from_uint8(np.array(shapes_dataset.images_64)))
    _, noise = encoder.encode(noise_images(len(shapes_dataset), seed=0))
    real_r = r_precision(real, pool, index, torch.Generator().manual_seed(0))
    noise_r = r_precision(noise, pool, index, torch.Generator().manual_seed(0))
    assert real_r >= 0.3 and real_r > noise_r + 0.2, (real_r, noise_r)
    assert record["config"]["channels"] == [8, 16, 32] and record["train_images"] == 32

    cached, cached_record = load_or_train(shapes_dataset, text_encoder, TINY_ENCODER, progress=False)
    assert cached_record == record  # loaded, not trained again
    assert torch.allclose(cached.encode(from_uint8(np.array(shapes_dataset.images_64)))[1], real, atol=1e-5)
    assert not list(shapes_dataset.root.glob("*.tmp"))


def test_the_judge_trains_in_the_precision_the_cpu_runs_fast_and_each_is_cached_apart(shapes_dataset,
                                                                                      text_encoder):
    # bfloat16 autocast on a CPU without its kernels (AVX2 only) costs ~20x float32 to train the judge
    fast = "bf16" if fast_bfloat16(torch.device("cpu")) else "fp32"
    assert image_encoder.training_precision("cpu") == fast
    _, record = load_or_train(shapes_dataset, text_encoder, TINY_ENCODER, progress=False)
    assert record["precision"] == fast
    config = replace(TINY_ENCODER, text_dim=text_encoder.dim)
    paths = {p: image_encoder.cache_paths(shapes_dataset, text_encoder, config, p)[0] for p in ("bf16", "fp32")}
    assert paths["bf16"] != paths["fp32"]  # two judges never share a cache file
    assert paths[fast].is_file()
    with pytest.raises(ValueError, match="precision"):
        image_encoder.train_image_encoder(shapes_dataset.images_64, *image_encoder.caption_embeddings(
            shapes_dataset, text_encoder), np.arange(4), config, precision="fp16", progress=False)


def test_scores_over_single_image_concepts_leave_out_the_variants(tmp_path, text_encoder):
    # 12 concepts with one image each, and 4 yellow ones with two skin-tone variants each
    items = [(shape_image(c, s, big=True), [f"{c} {s}"]) for c in ("red", "green", "blue") for s in SHAPES]
    items += [(shape_image("yellow", s, big), [f"yellow {s}, {tone} skin tone"])
              for s in SHAPES for big, tone in ((True, "dark"), (False, "light"))]
    ds = build(tmp_path / "variants", [(lambda im=im: square_sizes(im), caps) for im, caps in items], len(items),
               {"source": "test"}, "variants")
    encoder, _ = load_or_train(ds, text_encoder, TINY_ENCODER, progress=False)
    eval_index = evaluation_index(ds, np.arange(len(ds)), 16)
    scorer = Scorer.build(ds, text_encoder, encoder, eval_index, np.arange(len(ds)))
    assert scorer.single.tolist() == ["skin tone" not in ds.main_captions[i] for i in eval_index]
    real = from_uint8(np.array(ds.images_64)[eval_index])
    # the variants' images swapped for noise: the single-image scores cannot move, the overall ones may
    mixed = torch.where(scorer.single[:, None, None, None], real, noise_images(16, seed=0))
    got, want = scorer.score(mixed), scorer.score(real)
    assert want["num_single"] == got["num_single"] == 12
    for key in ("r_precision_single", "r_precision_colour_single", "r_precision_single_se"):
        assert got[key] == want[key]
    assert want["r_precision_single"] >= 0.5  # the tiny judge knows its real images
    assert scorer.score(noise_images(16, seed=1))["r_precision_single"] < want["r_precision_single"]


# ---------------------------------------------------------------- the command


@pytest.mark.slow
def test_evaluate_cli_end_to_end(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    folder = shapes_folder_at(tmp_path / "shapes")
    load_dataset(str(folder), tmp_path / "cache")  # prepared once here, as a user's first run would
    monkeypatch.setattr(image_encoder, "DEFAULT_CONFIG", ImageEncoderConfig(
        channels=(8, 16), epochs=3, batch_size=16, holdout=0.25))
    out = tmp_path / "eval"
    rc = main(["--checkpoint", str(tiny_checkpoint), "--data", str(folder), "--cache-dir", str(tmp_path / "cache"),
               "--num-captions", "4", "--guidance", "1", "3", "--steps", "2", "3", "--sampler", "ddim", "dpm++",
               "--threshold", "0.95", "0.7", "--guidance-min-t", "0", "500",
               "--sr", "--sr-steps", "2", "--sr-noise-level", "0", "100", "--sr-consistency", "on", "off",
               "--batch-size", "3", "--device", "cpu",
               "--dtype", "float32", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["num_captions"] == 4
    for row in [results["real"], results["blob"], results["noise"], *results["base"], *results["sr"],
                results["sr_of_real"]]:
        assert {"r_precision", "r_precision_se", "r_precision_colour", "frechet_distance"} <= row.keys()
        assert 0 <= row["r_precision"] <= 1 and 0 <= row["r_precision_colour"] <= 1
        assert row["frechet_distance"] >= -1e-6
    # The checkpoint's defaults are w=4, 3 steps, dpm++: the centre is the nearest guidance scale given.
    assert results["centre"] == {"guidance_scale": 3.0, "steps": 3, "sampler": "dpm++", "threshold": 0.95,
                                 "guidance_min_t": 0}
    # w=1 and 3 at the centre; 2 and 3 steps per sampler at w=3; the 0.7 percentile and guidance
    # from t = 500 down at the centre
    assert len(results["base"]) == 7
    assert sorted(r["threshold"] for r in results["base"]) == [0.7] + [0.95] * 6
    assert sorted(r["guidance_min_t"] for r in results["base"]) == [0] * 6 + [500]
    assert {"sharpness", "sr_steps", "sr_guidance_scale", "sr_noise_level"} <= results["sr"][0].keys()
    assert {"sharpness", "sr_consistency"} <= results["sr"][0].keys()
    # the centre (noise level 100, consistency off: the tiny checkpoint's defaults), then each sweep's others
    assert sorted((r["sr_noise_level"], r["sr_consistency"]) for r in results["sr"]) == [
        (0, False), (100, False), (100, True)]
    assert {"real_256", "bicubic_of_real_64", "bicubic_of_generated_64"} <= results["sharpness_reference"].keys()
    for name in ("guidance_sweep.png", "steps_sweep.png", "samples.png", "sr_samples.png"):
        assert Image.open(out / name).size[0] > 100
    printed = capsys.readouterr().out
    assert "real images (ceiling)" in printed and "colour blobs (floor)" in printed and "SR ceiling" in printed
    assert "w=3, 3 steps, dpm++, threshold 0.7" in printed
    assert "w=3, 3 steps, dpm++, guided t>=500" in printed
    assert f"image encoder trained in {image_encoder.training_precision('cpu')}" in printed  # which judge
    assert json.loads(printed.strip().splitlines()[-1]) == results


def test_evaluate_cli_says_what_is_missing(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nothing"), "--data", "emoji"]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_diversity_is_zero_for_one_picture_per_caption_and_grows_with_spread():
    from imagen.evaluation.metrics import diversity
    same = torch.randn(3, 1, 8).expand(3, 5, 8)
    assert diversity(same) == pytest.approx(0, abs=1e-6)
    spread = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    assert diversity(spread) > 0.5  # random directions: cosine distance about 1


@pytest.mark.slow
def test_evaluate_scores_the_gan_beside_diffusion_with_their_diversity(tmp_path, gan_checkpoint, monkeypatch):
    folder = shapes_folder_at(tmp_path / "shapes")
    tiny_checkpoint = gan_checkpoint
    monkeypatch.setattr(image_encoder, "DEFAULT_CONFIG", ImageEncoderConfig(channels=(8, 16), epochs=2, batch_size=16))
    out = tmp_path / "eval"
    assert main(["--checkpoint", str(tiny_checkpoint), "--data", str(folder), "--cache-dir", str(tmp_path / "cache"),
                 "--num-captions", "4", "--guidance", "3", "--gan", "--diversity", "3", "--batch-size", "4",
                 "--device", "cpu", "--dtype", "float32", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {"r_precision", "r_precision_colour", "frechet_distance", "seconds_per_image"} <= results["gan"].keys()
    d = results["diversity"]
    assert d["seeds"] == 3 and d["captions"] == 4 and d["diffusion"] > 0 and d["gan"] >= 0
