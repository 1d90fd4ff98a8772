"""Balanced sampling by concept: every concept is drawn about as often, however many variants it has.

About half of the emoji images are skin-tone variants of the same people emoji ("waving hand" has
six, "kiss: woman, man" twenty-six); drawn uniformly they take half of every batch away from the
~1,900 other concepts. A concept is a main caption with its skin-tone qualifiers removed, so for
datasets without them (a folder, Pokemon captions) images that share a caption form one concept.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

_SKIN_TONE = re.compile(r",? (?:(?:medium-)?(?:light|dark)|medium) skin tone")


def concept_key(caption: str) -> str:
    """'waving hand, dark skin tone, twemoji style' -> 'waving hand, twemoji style'."""
    return _SKIN_TONE.sub("", caption).strip()


def images_per_concept(captions: list[str]) -> list[int]:
    """For each image, how many images its concept has (1: no variants)."""
    keys = [concept_key(c) for c in captions]
    counts = Counter(keys)
    return [counts[k] for k in keys]


def concept_weights(captions: list[str], power: float = 1.0) -> torch.Tensor:
    """Sampling weight of each image: 1 / (images of its concept) ** power, normalised to sum 1.
    power 0 is uniform over images; 1 is uniform over concepts."""
    w = torch.tensor(images_per_concept(captions), dtype=torch.float64) ** -power
    return w / w.sum()
