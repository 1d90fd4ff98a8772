"""--mode colour and --mode grey on a small emoji-like dataset: outlined discs captioned as the
emoji data captions them ("elephant, openmoji style"). Which held-out pairs they ask for, and both
modes end to end."""

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imagen.data.colours import HUE_CLASSES, hue_distance, is_held_out
from imagen.data.phrasing import HELD_OUT_TEMPLATES
from imagen.data.prepared import build, square_sizes
from imagen.evaluate import evaluate, load_models, parse_args
from imagen.evaluation import asked as asked_module
from imagen.evaluation import image_encoder
from imagen.evaluation.asked import colour_pairs, grey_pairs, named_concepts
from imagen.evaluation.image_encoder import ImageEncoderConfig, load_or_train
from imagen.evaluation.scorer import Scorer

GREY, LIGHT = (150, 150, 150), (240, 240, 240)
DRAWINGS = {"elephant": GREY, "koala": GREY, "gear": GREY, "shark": GREY, "ghost": LIGHT, "grey heart": GREY,
            "banana": (255, 204, 77), "frog": (92, 158, 49), "whale": (30, 80, 160), "grapes": (170, 90, 200),
            "tangerine": (244, 144, 12), "red apple": (221, 46, 68)}


def disc(rgb: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(image).ellipse((48, 48, 208, 208), fill=rgb, outline=(0, 0, 0), width=8)
    return image


@pytest.fixture(scope="module")
def emoji_like(tmp_path_factory):
    items = [(lambda rgb=rgb: square_sizes(disc(rgb)), [f"{name}, {style} style", name])
             for name, rgb in DRAWINGS.items() for style in ("openmoji", "twemoji")]
    return build(tmp_path_factory.mktemp("data") / "emoji-like", items, len(items), {"source": "test"}, "emoji-like")


def test_colour_pairs_are_held_out_and_far_from_the_concepts_own_colour(emoji_like):
    own_colours = {"banana": "yellow", "frog": "green", "whale": "blue", "grapes": "purple", "tangerine": "orange"}
    pairs = colour_pairs(emoji_like, 100)
    names = [emoji_like.captions[i][1] for i, _, _ in pairs]
    # each clearly coloured concept whose name says no colour and that has a far held-out colour, once,
    # in OpenMoji's drawing; not the red apple (its name says red), not the grey ones
    assert names == list(dict.fromkeys(names))
    assert set(names) == {n for n, own in own_colours.items()
                          if any(is_held_out(c, n) and hue_distance(c, own) >= 2 for c in HUE_CLASSES)}
    for (i, own, asked), name in zip(pairs, names):
        assert emoji_like.captions[i][0] == f"{name}, openmoji style"
        assert own == own_colours[name] and is_held_out(asked, name) and hue_distance(own, asked) >= 2


def test_grey_pairs_ask_grey_filled_concepts_for_held_out_colours(emoji_like):
    pairs = grey_pairs(emoji_like, 100)
    names = [emoji_like.captions[i][1] for i, _, _ in pairs]
    # grey fills only: not the white ghost, not a name that says its colour, not a coloured drawing
    allowed = {n for n in ("elephant", "koala", "gear", "shark") if any(is_held_out(c, n) for c in HUE_CLASSES)}
    assert set(names) == allowed and len(names) == len(set(names))
    assert "elephant" in allowed  # its held-out colours include pink: "pink elephant" is asked, never trained
    for (_, own, asked), name in zip(pairs, names):
        assert own is None and is_held_out(asked, name)
    assert grey_pairs(emoji_like, 2) == pairs[:2]  # the same pairs, whatever the count asked


def test_colour_and_grey_modes_score_the_pairs_beside_their_ceilings_and_floors(emoji_like, tiny_checkpoint,
                                                                                 monkeypatch, tmp_path, capsys):
    """Both modes end to end on a tiny pipeline, with tiny judges: the real drawings recoloured (or
    tinted) into the asked colour are its ceiling, the real drawings in their own colour its floor."""
    tiny = ImageEncoderConfig(channels=(8, 16), epochs=3, batch_size=16)
    monkeypatch.setattr(image_encoder, "DEFAULT_CONFIG", tiny)
    monkeypatch.setattr(asked_module, "COLOUR_BLIND_CONFIG", replace(tiny, colour_blind=True))
    for mode, pick, changed in (("colour", colour_pairs, "recoloured"), ("grey", grey_pairs, "tinted")):
        out = tmp_path / mode
        args = parse_args(["--mode", mode, "--checkpoint", str(tiny_checkpoint), "--num-captions", "10",
                           "--batch-size", "4", "--device", "cpu", "--dtype", "float32", "--out", str(out)])
        pipe, text_encoder = load_models(args)
        results = evaluate(args, pipe, text_encoder, emoji_like, out)
        pairs = pick(emoji_like, 10)
        assert results["mode"] == mode and results["num_pairs"] == len(pairs) >= 2
        assert results["pairs"] == [f"{c} {emoji_like.captions[i][1]}" for i, _, c in pairs]
        assert results["real_recoloured"]["colour_hit"] == 1.0  # every real drawing takes the asked colour
        assert results["real"]["colour_hit"] == 0.0  # and none had it before
        for row in ("own colour", "asked colour"):
            assert 0 <= results[row]["colour_hit"] <= 1 and 0 <= results[row]["r_precision"] <= 1
        assert results["colour_blind_judge"]["config"]["colour_blind"]
        assert (out / f"{mode}_samples.png").is_file()
        assert json.loads((out / "results.json").read_text())["pairs"] == results["pairs"]
        printed = capsys.readouterr().out
        assert f"real images, {changed} (ceiling)" in printed and "shape kept" in printed


def test_phrasing_mode_says_what_the_text_encoder_alone_tells_apart(emoji_like, tiny_checkpoint, monkeypatch,
                                                                    tmp_path, capsys):
    """Without a model (--baselines-only) the phrasing mode still scores the prompts in the frozen text
    encoder: a concept's name ranks itself first, and so do its held-out phrasings ("a picture of a
    banana" is nearer "banana" than the other names); a prompt naming another concept does not."""
    monkeypatch.setattr(image_encoder, "DEFAULT_CONFIG", ImageEncoderConfig(channels=(8, 16), epochs=1, batch_size=16))
    args = parse_args(["--mode", "phrasing", "--checkpoint", str(tiny_checkpoint), "--num-captions", "12",
                       "--baselines-only", "--device", "cpu", "--dtype", "float32", "--out", str(tmp_path)])
    pipe, text_encoder = load_models(args)
    assert pipe is None
    results = evaluate(args, pipe, text_encoder, emoji_like, tmp_path)
    text = results["text_encoder"]
    assert list(text) == ["by name", *HELD_OUT_TEMPLATES]
    assert text["by name"]["r_precision"] == 1.0
    assert all(row["r_precision"] >= 0.75 for row in text.values()), text
    assert "the text encoder alone" in capsys.readouterr().out
    # the same score for prompts that name the wrong concept: chance or below
    index = named_concepts(emoji_like, 0)
    judge, _ = load_or_train(emoji_like, text_encoder, progress=False)
    scorer = Scorer.build(emoji_like, text_encoder, judge, np.array(index), np.arange(4), variant=1)
    names = [emoji_like.captions[i][1] for i in index]
    assert scorer.score_text(text_encoder.sentence_embeddings(names))["r_precision"] == 1.0
    wrong = text_encoder.sentence_embeddings(names[1:] + names[:1])
    assert scorer.score_text(wrong)["r_precision"] <= 0.25
