"""The discriminator: judges a drawing at 64, 32, 16 and 8 px at once, against its caption.

Each resolution's image enters the trunk where the trunk reaches that size (MSG-GAN's multi-scale
input, as GigaGAN does), so the generator's coarse outputs are judged as well as its 64 px one.
The caption enters by projection (Miyato and Koyama 2018): the score is linear(h) + <embed(text), h>,
so a drawing that is real but of another caption can score low (the matching-aware loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import pooled_text


class Discriminator(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 192, 192), text_dim: int = 384,
                 text: bool = True):
        """channels: the trunk's width at 64, 32, 16, 8 and 4 px."""
        super().__init__()
        self.from_rgb = nn.ModuleList([nn.Conv2d(3, c, 1) for c in channels[:-1]])  # at 64, 32, 16, 8 px
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1), nn.LeakyReLU(0.2),
                          nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
            for c_in, c_out in zip(channels[:-1], channels[1:])])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * 16, channels[-1]), nn.LeakyReLU(0.2))
        self.score = nn.Linear(channels[-1], 1)
        self.embed = nn.Linear(text_dim, channels[-1]) if text else None

    def features(self, images: list[torch.Tensor]) -> torch.Tensor:
        """images: the drawing at 8, 16, 32 and 64 px (the generator's order) -> the trunk's h (B, C)."""
        by_size = {im.shape[-1]: im for im in images}
        x = None
        for from_rgb, block in zip(self.from_rgb, self.blocks):
            size = 64 if x is None else x.shape[-1]
            fed = from_rgb(by_size[size])
            x = fed if x is None else x + fed
            x = block(x)
        return self.head(x)

    def judge(self, h: torch.Tensor, text_embeds: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """The trunk's h and a caption -> a score per sample (B,). The caption enters only here, so one
        drawing's h can be judged under several captions (the matching-aware loss) without a second trunk pass."""
        out = self.score(h).squeeze(-1)
        if self.embed is not None:
            out = out + (self.embed(pooled_text(text_embeds, text_mask)) * h).sum(-1)
        return out

    def forward(self, images: list[torch.Tensor], text_embeds: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """images: the drawing at 8, 16, 32 and 64 px (the generator's order) -> a score per sample (B,)."""
        return self.judge(self.features(images), text_embeds, text_mask)


def pyramid(images_64: torch.Tensor) -> list[torch.Tensor]:
    """A real 64 px batch as the generator's outputs come: at 8, 16, 32 and 64 px (area-averaged)."""
    return [F.avg_pool2d(images_64, 64 // r) if r < 64 else images_64 for r in (8, 16, 32, 64)]
