"""Pure scoring functions: text-image alignment, distance between image distributions, sharpness."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg


def r_precision(image_embeds: torch.Tensor, caption_embeds: torch.Tensor, true_index: torch.Tensor,
                generator: torch.Generator, n_distractors: int = 99) -> float:
    """Top-1 R-precision (AttnGAN, Xu et al. 2018): the share of images whose true caption outscores
    `n_distractors` other captions drawn at random from the pool.

    image_embeds (N, D) and caption_embeds (M, D) are compared by cosine similarity; image i's true
    caption is row true_index[i] of the pool. The draw comes from `generator` alone, so the same
    generator state gives every set of images the same distractors."""
    distractors = random_distractors(caption_embeds.shape[0], true_index, generator, n_distractors)
    return r_precision_against(image_embeds, caption_embeds, true_index, distractors)


def random_distractors(pool_size: int, true_index: torch.Tensor, generator: torch.Generator,
                       n_distractors: int = 99) -> torch.Tensor:
    """(N, k) pool rows drawn at random for each image, never its true caption's row."""
    if pool_size < 2:
        raise ValueError("the caption pool needs at least two captions")
    k = min(n_distractors, pool_size - 1)
    true_index = torch.as_tensor(true_index, dtype=torch.long)
    # Draw from the m - 1 captions that are not the true one: indices at or past it shift by one.
    drawn = torch.stack([torch.randperm(pool_size - 1, generator=generator)[:k] for _ in true_index])  # (N, k)
    return drawn + (drawn >= true_index[:, None]).long()


def r_precision_against(image_embeds: torch.Tensor, caption_embeds: torch.Tensor, true_index: torch.Tensor,
                        distractors: torch.Tensor) -> float:
    """The share of images whose true caption outscores every one of its own distractors:
    distractors (N, k) are rows of the caption pool, chosen by the caller (at random, or matched
    in colour so that only shape can decide)."""
    return top1_hits(image_embeds, caption_embeds, true_index, distractors).float().mean().item()


def top1_hits(image_embeds: torch.Tensor, caption_embeds: torch.Tensor, true_index: torch.Tensor,
              distractors: torch.Tensor) -> torch.Tensor:
    """(N,) bool: image i's true caption outscores all of distractors[i] (cosine similarity)."""
    images = F.normalize(image_embeds.float(), dim=-1)
    captions = F.normalize(caption_embeds.float(), dim=-1)
    true_score = (images * captions[torch.as_tensor(true_index, dtype=torch.long)]).sum(-1)  # (N,)
    distractor_score = torch.einsum("nd,nkd->nk", images, captions[distractors])  # (N, k)
    return true_score > distractor_score.max(dim=1).values


def frechet_distance(feats_a: np.ndarray | torch.Tensor, feats_b: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    a, b = (np.asarray(torch.as_tensor(f).double().cpu()) for f in (feats_a, feats_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets of equal width, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer samples than dimensions make a singular product: expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # offset the diagonals, as pytorch-fid does
            offset = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real  # sqrtm leaves tiny imaginary parts from rounding
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def sharpness(images: torch.Tensor) -> float:
    """Root-mean-square gradient of the luma (the gradient-energy focus measure; Tenengrad, Krotkov
    1987, squares Sobel responses the same way), in [0, 1] intensity per pixel. Squaring is what makes
    it see blur: a blurred edge keeps its total rise but spreads it over more pixels.
    images: (B, 3, H, W) in [-1, 1]."""
    luma = (images.float().clamp(-1, 1) + 1) / 2
    luma = 0.299 * luma[:, 0] + 0.587 * luma[:, 1] + 0.114 * luma[:, 2]  # (B, H, W)
    gx, gy = luma.diff(dim=2), luma.diff(dim=1)
    return (gx.square().mean() + gy.square().mean()).sqrt().item()


def diversity(embeds: torch.Tensor) -> float:
    """Mean pairwise cosine distance between the judge's features of one caption's images drawn from
    different seeds, averaged over captions: embeds (C, S, D). 0 when every seed gives the same
    picture (a collapsed generator), larger the more the drawings differ."""
    e = F.normalize(embeds.float(), dim=-1)
    sims = e @ e.transpose(1, 2)  # (C, S, S)
    s = e.shape[1]
    off_diagonal = sims.sum((1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(-1)
    return (1 - off_diagonal / (s * (s - 1))).mean().item()
