import shutil
from pathlib import Path

import pytest
import torch

from imagen.text_encoder import (
    DEFAULT_TEXT_ENCODER,
    TextEncoder,
    TextEncoderError,
    pooled_sentence_embedding,
    resolve_text_encoder,
)


def test_shapes_mask_and_zeroed_padding(text_encoder):
    enc = text_encoder.encode(["red apple", "a grinning face with big eyes"])
    assert enc.text_embeds.shape == (2, text_encoder.max_length, 384)
    assert enc.text_mask.shape == (2, text_encoder.max_length) and enc.text_mask.dtype == torch.bool
    assert enc.text_mask[0].sum() < enc.text_mask[1].sum()
    assert torch.all(enc.text_embeds[~enc.text_mask] == 0)
    assert enc.truncated == [False, False]


def test_overlong_prompt_is_truncated_and_reported(text_encoder):
    enc = text_encoder.encode(["apple " * 100, "pear"])
    assert enc.truncated == [True, False]
    assert enc.text_mask[0].all()


def test_cache_returns_same_embeddings_and_stays_bounded(text_encoder):
    first = text_encoder.encode(["cat face"]).text_embeds
    for i in range(text_encoder._cache_size + 5):
        text_encoder.encode([f"prompt {i}"])
    assert len(text_encoder._cache) == text_encoder._cache_size
    assert torch.allclose(text_encoder.encode(["cat face"]).text_embeds, first, atol=1e-5)


def test_empty_caption_differs_from_a_real_one(text_encoder):
    empty = text_encoder.encode_empty(2)
    assert empty.text_mask.sum(1).tolist() == [2, 2]  # [CLS] [SEP]
    assert not torch.allclose(empty.text_embeds[0], text_encoder.encode(["red apple"]).text_embeds[0])


def test_sentence_embeddings_put_related_captions_closer(text_encoder):
    e = text_encoder.sentence_embeddings(["red apple", "green apple", "rocket"])
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]
    enc = text_encoder.encode(["red apple"])
    assert torch.allclose(pooled_sentence_embedding(enc.text_embeds, enc.text_mask), e[:1], atol=1e-5)


def test_one_call_with_more_new_prompts_than_the_cache_holds(text_encoder):
    prompts = [f"caption number {i}" for i in range(text_encoder._cache_size + 10)]
    enc = text_encoder.encode(prompts + prompts[:3])  # repeats too: the first ones are needed twice
    assert enc.text_embeds.shape[0] == len(prompts) + 3
    direct = text_encoder.encode(prompts[:3], use_cache=False).text_embeds
    assert torch.allclose(enc.text_embeds[:3], direct, atol=1e-5)
    assert torch.allclose(enc.text_embeds[-3:], direct, atol=1e-5)
    assert len(text_encoder._cache) == text_encoder._cache_size


def _copy_without_weights(folder: Path) -> Path:
    """The packaged encoder's config and tokenizer files, without its model.safetensors."""
    source = Path(resolve_text_encoder(DEFAULT_TEXT_ENCODER))
    folder.mkdir()
    for f in source.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, folder / f.name)
    return folder


def test_pickled_text_encoder_weights_are_refused_not_unpickled(tmp_path, text_encoder):
    folder = _copy_without_weights(tmp_path / "pickled")
    # Real weights, saved the old pickled way: loading them would work, and would run pickle.
    torch.save(text_encoder.model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(TextEncoderError, match="pytorch_model.bin, which is never loaded"):
        TextEncoder(str(folder))


def test_a_missing_text_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(TextEncoderError, match="there is no folder at"):
        TextEncoder(str(tmp_path / "no-such-encoder"))
    with pytest.raises(TextEncoderError, match="has no model.safetensors"):
        TextEncoder(str(_copy_without_weights(tmp_path / "empty")))
