"""What colour alone says about an image, so that a metric can be made blind to it.

A judge that scores a picture against random captions rewards colour: a red disc beats 99 random
captions for "red apple" and for "red heart" alike. Two things here take colour out of the
question:

- colour-matched distractors: for each caption, the captions of other concepts whose real images
  are nearest in ink colour and ink coverage, so that only shape can tell them apart;
- colour blobs: a disc of an image's mean ink colour covering its ink area, on white. It is the
  floor that colour alone reaches; a metric worth reporting must not let it score.

"Ink" is every pixel that is not near-white (the datasets are drawings on white).
"""

from __future__ import annotations

import math

import numpy as np
import torch

INK_THRESHOLD = 230  # a pixel with any channel below this is ink, not the white background


def ink_features(images_64: np.ndarray) -> np.ndarray:
    """(N, 64, 64, 3) uint8 -> (N, 4): mean ink colour (R, G, B in [0, 1]) and ink coverage (share of
    pixels). An image with no ink has white as its colour and coverage 0."""
    pixels = np.asarray(images_64, dtype=np.float32) / 255
    ink = (np.asarray(images_64) < INK_THRESHOLD).any(axis=-1)  # (N, 64, 64)
    count = ink.sum(axis=(1, 2))
    colour = (pixels * ink[..., None]).sum(axis=(1, 2)) / np.maximum(count, 1)[:, None]
    colour[count == 0] = 1.0
    coverage = count / ink[0].size
    return np.concatenate([colour, coverage[:, None]], axis=1)


def colour_matched_distractors(features: np.ndarray, true_index: torch.Tensor, concepts: list[str],
                               n_distractors: int = 99) -> torch.Tensor:
    """(N, k) pool rows: for each true caption, the k captions nearest to it in ink colour and
    coverage (Euclidean, both in [0, 1]) that belong to another concept. features (M, 4) and
    concepts (M,) describe the pool's captions by their real images."""
    feats = torch.as_tensor(features, dtype=torch.float64)
    concept_id = {c: i for i, c in enumerate(dict.fromkeys(concepts))}
    ids = torch.tensor([concept_id[c] for c in concepts])
    true_index = torch.as_tensor(true_index, dtype=torch.long)
    distance = torch.cdist(feats[true_index], feats)  # (N, M)
    distance[ids[true_index][:, None] == ids[None, :]] = math.inf  # the caption itself and its variants
    k = min(n_distractors, int(torch.isfinite(distance).sum(1).min()))
    if k < 1:
        raise ValueError("the caption pool has no caption of another concept to use as a distractor")
    return distance.topk(k, dim=1, largest=False).indices


def colour_blobs(features: np.ndarray, size: int = 64) -> torch.Tensor:
    """(N, 4) ink features -> (N, 3, size, size) in [-1, 1]: a centred disc of each mean ink colour
    whose area is the ink coverage, on white."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    r2 = (yy - size / 2) ** 2 + (xx - size / 2) ** 2
    feats = torch.as_tensor(features, dtype=torch.float32)
    radius2 = feats[:, 3] * size * size / math.pi  # area = coverage * size^2
    disc = (r2[None] <= radius2[:, None, None]).float()[:, None]  # (N, 1, H, W)
    colour = feats[:, :3, None, None]  # (N, 3, 1, 1)
    return (disc * colour + (1 - disc)) * 2 - 1
