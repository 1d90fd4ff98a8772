"""What the GAN is trained with: the non-saturating logistic loss (Goodfellow et al. 2014), the
matching-aware loss (Reed et al. 2016: a real drawing with another sample's caption counts as fake),
the R1 penalty on real drawings (Mescheder et al. 2018), and DiffAugment-style augmentation of
everything the discriminator sees (Zhao et al. 2020: translation and cutout, the same for every
scale of one drawing, differentiable so the generator learns through it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotated(text_embeds: torch.Tensor, text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each sample's caption swapped for the next sample's (the batch rotated by one), and (B,) True
    where the swapped caption really differs: two images with one caption must not teach a mismatch."""
    embeds, mask = text_embeds.roll(1, dims=0), text_mask.roll(1, dims=0)
    differs = ((embeds - text_embeds).abs().flatten(1).amax(1) > 0) | (mask != text_mask).any(1)
    return embeds, mask, differs


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, mismatched: torch.Tensor | None = None,
                       mismatch_valid: torch.Tensor | None = None, mismatch_weight: float = 1.0) -> torch.Tensor:
    """Scores (B,) of real drawings with their captions, of generated ones, and optionally of real
    drawings with rotated captions (the matching-aware term, over the rows where the caption differs)."""
    loss = F.softplus(-real).mean() + F.softplus(fake).mean()
    if mismatched is not None:
        valid = mismatch_valid if mismatch_valid is not None else torch.ones_like(mismatched, dtype=torch.bool)
        if valid.any():
            loss = loss + mismatch_weight * F.softplus(mismatched[valid]).mean()
    return loss


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss on the scores (B,) of its drawings."""
    return F.softplus(-fake).mean()


def r1_penalty(score: torch.Tensor, images: list[torch.Tensor]) -> torch.Tensor:
    """The squared norm of the score's gradient at real drawings, every scale, mean over the batch."""
    grads = torch.autograd.grad(score.sum(), images, create_graph=True)
    return sum(g.square().flatten(1).sum(1) for g in grads).mean()


def diff_augment(images: list[torch.Tensor], generator: torch.Generator, shift: float = 0.125,
                 cutout: float = 0.25) -> list[torch.Tensor]:
    """Translate each drawing by up to `shift` of its side (what comes in from outside is white) and
    blank a white square of `cutout` of its side; the same fractions at every scale of one drawing."""
    b = images[0].shape[0]
    dx, dy = ((torch.rand(b, generator=generator) * 2 - 1) * shift for _ in range(2))
    cx, cy = torch.rand(b, generator=generator), torch.rand(b, generator=generator)
    out = []
    for x in images:
        r = x.shape[-1]
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2], theta[:, 1, 2] = (dx * 2).to(x.device), (dy * 2).to(x.device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # shifted in from outside is white, the background (white is 1: sample x - 1, whose padding 0 is white)
        x = F.grid_sample(x - 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) + 1
        size = max(1, round(cutout * r))
        ys = torch.arange(r, device=x.device)
        y0, x0 = (cy * (r - size)).round().long().to(x.device), (cx * (r - size)).round().long().to(x.device)
        inside_y = (ys[None] >= y0[:, None]) & (ys[None] < (y0 + size)[:, None])  # (B, r)
        inside_x = (ys[None] >= x0[:, None]) & (ys[None] < (x0 + size)[:, None])
        hole = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # (B, 1, r, r)
        out.append(torch.where(hole, torch.ones_like(x), x))  # a white square: the background's colour
    return out
