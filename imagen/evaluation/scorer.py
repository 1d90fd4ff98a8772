"""Scoring one set of 64 px images made for the evaluation captions: R-precision against a pool of
the dataset's captions (random distractors, and colour-matched ones that only shape can beat), and
Fréchet distance to the real images the image encoder was trained on.

Every set is scored with the same distractor captions and the same reference, so numbers from
different settings, the real images (the ceiling), colour blobs and noise (the floors) can be
compared directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.balance import concept_key, images_per_concept
from ..data.prepared import PreparedDataset
from ..images import from_uint8
from ..text_encoder import TextEncoder
from .colour import colour_blobs, colour_matched_distractors, ink_features
from .image_encoder import ImageEncoder, caption_embeddings
from .metrics import frechet_distance, random_distractors, top1_hits


def evaluation_index(ds: PreparedDataset, candidates: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to n images from `candidates`, in a seeded random order, one per concept: skin-tone
    variants of one emoji count once, so the captions weigh concepts as a user's prompts would."""
    order = np.asarray(candidates)[np.random.default_rng(seed).permutation(len(candidates))]
    seen: set[str] = set()
    picked = []
    for i in order:
        key = concept_key(ds.main_captions[i])
        if key not in seen:
            seen.add(key)
            picked.append(int(i))
            if len(picked) == n:
                break
    return np.array(picked, dtype=np.int64)


@dataclass
class Scorer:
    encoder: ImageEncoder
    caption_pool: torch.Tensor  # (M, D) the judge's embeddings of the dataset's distinct main captions
    true_index: torch.Tensor  # (N,) row of each evaluation image's caption in the pool
    random_distractors: torch.Tensor  # (N, k) pool rows drawn at random (seeded), never the true one
    colour_distractors: torch.Tensor  # (N, k) pool rows nearest in ink colour, other concepts only
    reference_features: torch.Tensor  # (R, C) encoder features of real images it was trained on
    blobs: torch.Tensor  # (N, 3, 64, 64) colour blobs of the evaluation images' real images
    # (N,) bool: the caption's concept has one image (no skin-tone variants). The evaluation draws
    # one caption per concept from a random order of images, so a concept with many variants (the
    # people emoji) is drawn more often than a user would type it; these are the others.
    single: torch.Tensor
    # (M, D) the frozen text encoder's own sentence embeddings of the pool captions: what the text
    # alone tells apart (score_text), the ceiling of what a model conditioned on it can follow
    caption_sentences: torch.Tensor

    @classmethod
    def build(cls, ds: PreparedDataset, text_encoder: TextEncoder, encoder: ImageEncoder,
              eval_index: np.ndarray, reference_index: np.ndarray, seed: int = 0, variant: int = 0) -> Scorer:
        """The scorer of images made for the captions of the images `eval_index`. `variant` picks the
        caption variant each image is named by (0, the main caption; 1, the emoji data's bare name)."""
        sentences, offsets = caption_embeddings(ds, text_encoder)
        variants = [min(variant, len(c) - 1) for c in ds.captions]
        captions = [c[v] for c, v in zip(ds.captions, variants)]
        # Distinct captions only: a caption shared by two images is one candidate, not two.
        rows: dict[str, int] = {}
        for i, caption in enumerate(captions):
            rows.setdefault(caption, i)
        pool_images = np.array(list(rows.values()))
        position = {caption: k for k, caption in enumerate(rows)}
        true_index = torch.tensor([position[captions[i]] for i in eval_index])
        pool_features = ink_features(ds.images_64[pool_images])
        distractors = colour_matched_distractors(pool_features, true_index, [concept_key(c) for c in rows])
        reference_index = np.sort(reference_index)
        reference = torch.cat([encoder.encode(from_uint8(ds.images_64[reference_index[i:i + 1024]]))[0]
                               for i in range(0, len(reference_index), 1024)])  # in chunks: float images are big
        # drawn once: every set of images is scored against the same random distractors
        random = random_distractors(len(pool_images), true_index, torch.Generator().manual_seed(seed))
        single = torch.tensor(images_per_concept(ds.main_captions))[np.asarray(eval_index)] == 1
        pool_rows = offsets[pool_images] + torch.tensor(variants)[pool_images]
        return cls(encoder, encoder.encode_text(sentences[pool_rows]), true_index, random, distractors,
                   reference, colour_blobs(ink_features(ds.images_64[np.asarray(eval_index)])), single,
                   sentences[pool_rows])

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """images (N, 3, 64, 64) in [-1, 1], image i made for evaluation caption i."""
        if len(images) != len(self.true_index):
            raise ValueError(f"expected {len(self.true_index)} images, one per evaluation caption, got {len(images)}")
        features, embeds = self.encoder.encode(images)
        scores = {"frechet_distance": round(frechet_distance(features, self.reference_features), 4)}
        for name, distractors in (("r_precision", self.random_distractors),
                                  ("r_precision_colour", self.colour_distractors)):
            hits = top1_hits(embeds, self.caption_pool, self.true_index, distractors).float()
            for suffix, h in (("", hits), ("_single", hits[self.single])):
                if len(h):  # no "_single" scores where every concept has variants
                    p = h.mean().item()
                    scores |= {name + suffix: round(p, 4), f"{name}{suffix}_se": _binomial_se(p, len(h))}
        return scores | {"num_single": int(self.single.sum())}


    def score_text(self, sentence_embeds: torch.Tensor) -> dict[str, float]:
        """The prompts alone, no image: prompt i's sentence embedding (N, D) in the frozen text encoder
        ranks its caption above the same random distractors as `score`'s R-precision."""
        if len(sentence_embeds) != len(self.true_index):
            raise ValueError(f"expected {len(self.true_index)} prompts, one per evaluation caption, "
                             f"got {len(sentence_embeds)}")
        p = top1_hits(sentence_embeds, self.caption_sentences, self.true_index, self.random_distractors).float()
        p = p.mean().item()
        return {"r_precision": round(p, 4), "r_precision_se": _binomial_se(p, len(self.true_index))}


def _binomial_se(p: float, n: int) -> float:
    return round(math.sqrt(p * (1 - p) / n), 4)


def noise_images(n: int, seed: int) -> torch.Tensor:
    """The floor: Gaussian noise clipped to the image range (N, 3, 64, 64), what an untrained model returns."""
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)
