"""Scoring one set of 64 px images made for the evaluation captions: R-precision against a pool of
the dataset's captions, and Fréchet distance to the real images of the image encoder's training split.

Every set is scored with the same distractor captions and the same reference, so numbers from
different settings, the real images (the ceiling) and noise (the floor) can be compared directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.prepared import PreparedDataset
from ..images import from_uint8
from ..text_encoder import TextEncoder
from .image_encoder import ImageEncoder, caption_embeddings
from .metrics import frechet_distance, r_precision


@dataclass
class Scorer:
    encoder: ImageEncoder
    caption_pool: torch.Tensor  # (M, D) sentence embeddings of the dataset's distinct main captions
    true_index: torch.Tensor  # (N,) row of each evaluation image's caption in the pool
    reference_features: torch.Tensor  # (R, C) encoder features of real images it was trained on
    seed: int = 0

    @classmethod
    def build(cls, ds: PreparedDataset, text_encoder: TextEncoder, encoder: ImageEncoder,
              eval_index: np.ndarray, reference_index: np.ndarray, seed: int = 0) -> Scorer:
        sentences, offsets = caption_embeddings(ds, text_encoder)
        # Distinct main captions only: a caption shared by two images is one candidate, not two.
        rows: dict[str, int] = {}
        for i, caption in enumerate(ds.main_captions):
            rows.setdefault(caption, i)
        pool_images = list(rows.values())
        position = {caption: k for k, caption in enumerate(rows)}
        true_index = torch.tensor([position[ds.main_captions[i]] for i in eval_index])
        reference_index = np.sort(reference_index)
        reference = torch.cat([encoder.encode(from_uint8(ds.images_64[reference_index[i:i + 1024]]))[0]
                               for i in range(0, len(reference_index), 1024)])  # in chunks: float images are big
        return cls(encoder, sentences[offsets[pool_images]], true_index, reference, seed)

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """images (N, 3, 64, 64) in [-1, 1], image i made for evaluation caption i."""
        if len(images) != len(self.true_index):
            raise ValueError(f"expected {len(self.true_index)} images, one per evaluation caption, got {len(images)}")
        features, embeds = self.encoder.encode(images)
        r = r_precision(embeds, self.caption_pool, self.true_index, torch.Generator().manual_seed(self.seed))
        return {"r_precision": round(r, 4),
                "r_precision_se": round(math.sqrt(r * (1 - r) / len(images)), 4),  # binomial standard error
                "frechet_distance": round(frechet_distance(features, self.reference_features), 4)}


def noise_images(n: int, seed: int) -> torch.Tensor:
    """The floor: Gaussian noise clipped to the image range (N, 3, 64, 64), what an untrained model returns."""
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)
