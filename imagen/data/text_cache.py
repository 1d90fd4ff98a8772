"""Caption embeddings computed once per dataset and text encoder, then reused by every run.
The text encoder is frozen, so encoding each caption at every step would be wasted work."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..text_encoder import TextEncoder
from .prepared import PreparedDataset


@dataclass
class CaptionEmbeddings:
    text_embeds: torch.Tensor  # (M, L, D) float16, every caption variant of every image
    text_mask: torch.Tensor  # (M, L) bool
    offsets: torch.Tensor  # (N + 1,) image i's variants are rows offsets[i] .. offsets[i+1]-1
    empty_embeds: torch.Tensor  # (L, D) the empty caption, for caption dropout
    empty_mask: torch.Tensor  # (L,)

    def rows(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One caption variant per image, chosen at random."""
        counts = self.offsets[images + 1] - self.offsets[images]
        pick = (torch.rand(len(images), generator=generator) * counts).long()
        return self.offsets[images] + pick


def cached_text_embeddings(ds: PreparedDataset, encoder: TextEncoder, batch: int = 256) -> CaptionEmbeddings:
    flat = [c for caps in ds.captions for c in caps]
    digest = hashlib.sha1("\n".join([encoder.name, str(encoder.max_length), *flat]).encode()).hexdigest()[:12]
    path = Path(ds.root) / f"text-{digest}.safetensors"
    if not path.is_file():
        parts = [encoder.encode(flat[i:i + batch], use_cache=False)
                 for i in tqdm(range(0, len(flat), batch), desc="encoding captions", unit="batch")]
        empty = encoder.encode([""], use_cache=False)
        tensors = {
            "text_embeds": torch.cat([p.text_embeds for p in parts]).half(),
            "text_mask": torch.cat([p.text_mask for p in parts]),
            "offsets": torch.tensor([0, *torch.tensor([len(c) for c in ds.captions]).cumsum(0).tolist()]),
            "empty_embeds": empty.text_embeds[0].half(),
            "empty_mask": empty.text_mask[0],
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, tmp)
        os.replace(tmp, path)
    return CaptionEmbeddings(**load_file(path))
