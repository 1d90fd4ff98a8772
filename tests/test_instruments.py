"""The instruments: per-word cross-attention maps and the two halves of guidance, opt-in and free when off."""

from __future__ import annotations

import pytest
import torch

from imagen.generate import main as generate_main
from imagen.instruments import word_maps, words


def test_words_join_word_pieces_and_leave_out_special_tokens_and_punctuation(text_encoder):
    spans = words(text_encoder, "red apple, twemoji style")
    assert [w for w, _ in spans] == ["red", "apple", "twemoji", "style"]
    ids = text_encoder.tokenizer("red apple, twemoji style")["input_ids"]
    assert len(spans[2][1]) > 1  # "twemoji" is several word pieces, joined back
    assert all(0 < p < len(ids) - 1 for _, positions in spans for p in positions)  # not [CLS] or [SEP]


def test_attention_maps_are_shares_of_attention_on_real_tokens(tiny_pipeline):
    prompt = "red apple, twemoji style"
    steps = list(tiny_pipeline.generate(prompt, seed=0, sr=False, attention=True))
    mask = tiny_pipeline.text_encoder.encode([prompt]).text_mask[0]  # (L,)
    for step in steps:
        maps = step.attention  # (B, L, 64, 64)
        assert maps.shape == (1, tiny_pipeline.text_encoder.max_length, 64, 64)
        assert maps.min() >= 0
        # Each pixel's attention sums to one over the text and the image: the text's share is at most 1.
        assert maps.sum(1).max() <= 1 + 1e-4 and maps[0, mask].sum(0).min() > 0
        assert maps[0, ~mask].abs().max() == 0  # padding is masked out: no attention reaches it
    spans = words(tiny_pipeline.text_encoder, prompt)
    per_word = word_maps(steps[-1].attention[0], spans)
    assert list(per_word) == ["red", "apple", "twemoji", "style", "all"]
    assert not torch.allclose(per_word["red"], per_word["apple"])  # two words, two maps
    torch.testing.assert_close(per_word["twemoji"], steps[-1].attention[0, spans[2][1]].sum(0))
    torch.testing.assert_close(per_word["all"], sum(per_word[w] for w, _ in spans))


def test_instruments_off_leave_the_steps_and_the_unet_as_they_were(tiny_pipeline):
    processors = {k: type(v) for k, v in tiny_pipeline.base_unet.attn_processors.items()}
    plain = list(tiny_pipeline.generate("cat face", seed=1, sr=False))
    assert all(s.attention is None and s.x0_uncond is None for s in plain)
    probed = tiny_pipeline.generate("cat face", seed=1, sr=False, attention=True)
    next(probed)
    assert {type(v) for v in tiny_pipeline.base_unet.attn_processors.values()} != set(processors.values())
    probed.close()  # abandoned mid-run, as a closed browser tab does: the processors come back
    assert {k: type(v) for k, v in tiny_pipeline.base_unet.attn_processors.items()} == processors
    again = list(tiny_pipeline.generate("cat face", seed=1, sr=False))
    torch.testing.assert_close(again[-1].x_prev, plain[-1].x_prev, rtol=0, atol=0)


@pytest.mark.parametrize("w, same_as", [(1.0, "x0_cond"), (0.0, "x0_uncond")])
def test_guidance_parts_are_the_halves_guidance_mixes(tiny_pipeline, w, same_as):
    steps = list(tiny_pipeline.generate("red apple", seed=2, sr=False, guidance_parts=True, guidance_scale=w))
    for step in steps:
        assert step.x0_uncond.shape == step.x0_cond.shape == step.x0_pred.shape
        assert not torch.allclose(step.x0_uncond, step.x0_cond)  # the caption changes the prediction
        # guided = uncond + w (cond - uncond): at w = 1 it is the captioned half, at w = 0 the other
        torch.testing.assert_close(step.x0_pred, getattr(step, same_as), atol=1e-5, rtol=1e-5)


def test_generate_attention_writes_one_map_per_word(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    code = generate_main(["red apple, twemoji style", "cat face", "--checkpoint", str(tiny_checkpoint),
                          "--out", str(out), "--no-sr", "--attention", "--device", "cpu"])
    assert code == 0
    names = sorted(p.name for p in (out / "attention").iterdir())
    assert names == ["0000_all.png", "0000_apple.png", "0000_red.png", "0000_style.png", "0000_twemoji.png",
                     "0001_all.png", "0001_cat.png", "0001_face.png"]
    from PIL import Image
    sheet = Image.open(out / "attention" / "0000_apple.png")
    assert sheet.size == (128, 64)  # the last step's map beside the sum over all steps
