"""The generator's building blocks, after GigaGAN (Kang et al. 2023) and StyleGAN2 (Karras et al. 2020).

- `AdaptiveConv`: a 3x3 convolution whose kernel is, per sample, a softmax-weighted mix of a small
  bank of kernels (GigaGAN's sample-adaptive kernel selection), then modulated by the style and
  demodulated (StyleGAN2), and run as one grouped convolution over the batch.
- `WordAttention`: cross-attention from every pixel to the caption's word embeddings (the text
  mask keeps padding out), added back as a residual.
- `pooled_text`: the masked mean of the token embeddings, the sentence the mapping network reads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def pooled_text(text_embeds: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D): the mean of the caption's tokens (padding left out)."""
    mask = text_mask.to(text_embeds.dtype).unsqueeze(-1)
    return (text_embeds * mask).sum(1) / mask.sum(1).clamp(min=1)


class AdaptiveConv(nn.Module):
    """3x3 convolution, kernel = softmax(select(w)) . bank, modulated by style(w) and demodulated."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernels: int = 4, demodulate: bool = True):
        super().__init__()
        self.c_in, self.c_out, self.kernels, self.demodulate = c_in, c_out, kernels, demodulate
        self.bank = nn.Parameter(torch.randn(kernels, c_out, c_in, 3, 3) / math.sqrt(c_in * 9))
        self.select = nn.Linear(w_dim, kernels) if kernels > 1 else None
        self.style = nn.Linear(w_dim, c_in)
        nn.init.ones_(self.style.bias)  # start as the plain convolution
        self.bias = nn.Parameter(torch.zeros(c_out))

    def kernel(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> the per-sample kernel (B, c_out, c_in, 3, 3), before modulation."""
        if self.select is None:
            return self.bank[0].expand(w.shape[0], -1, -1, -1, -1)
        weights = self.select(w).softmax(-1)  # (B, K)
        return torch.einsum("bk,koihw->boihw", weights, self.bank)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, _, h, wd = x.shape
        weight = self.kernel(w) * self.style(w)[:, None, :, None, None]  # modulate the inputs
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        out = F.conv2d(x.reshape(1, b * self.c_in, h, wd), weight.reshape(b * self.c_out, self.c_in, 3, 3),
                       padding=1, groups=b)  # one grouped convolution: sample i with its own kernel
        return out.reshape(b, self.c_out, h, wd) + self.bias[None, :, None, None]


class WordAttention(nn.Module):
    """Pixels attend to the caption's words: x + proj(softmax(q k^T / sqrt(d)) v)."""

    def __init__(self, channels: int, text_dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(text_dim, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)  # a residual that starts at zero
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, text_embeds: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(self.norm(x).flatten(2).transpose(1, 2))  # (B, HW, C)
        k, v = self.kv(text_embeds).chunk(2, dim=-1)  # (B, L, C) each
        split = lambda t: t.reshape(b, t.shape[1], self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        mask = text_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        attended = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
        attended = attended.transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(attended).transpose(1, 2).reshape(b, c, h, w)
