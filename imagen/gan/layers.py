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

    def mix(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> each sample's weights over the bank (B, K), summing to 1."""
        if self.select is None:
            return w.new_ones(w.shape[0], 1)
        return self.select(w).softmax(-1)

    def kernel(self, w: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        """(B, w_dim) -> the per-sample kernel (B, c_out, c_in, 3, 3), before modulation."""
        if self.select is None:
            return self.bank[0].expand(w.shape[0], -1, -1, -1, -1)
        return torch.einsum("bk,koihw->boihw", self.mix(w) if mix is None else mix, self.bank)

    def demodulation(self, mix: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """(B, K), (B, c_in) -> (B, c_out): 1 / the norm of each output's modulated kernel, from the
        bank's Gram matrix: |sum_k a_k W_k s|^2 = sum_kl a_k a_l sum_i s_i^2 <W_k, W_l>_i, so no
        (B, c_out, c_in, 3, 3) tensor is squared."""
        bank = self.bank.flatten(3)  # (K, c_out, c_in, 9)
        gram = torch.einsum("koin,loin->kloi", bank, bank)  # (K, K, c_out, c_in)
        norm = torch.einsum("bk,bl,kloi,bi->bo", mix, mix, gram, style.square())
        return torch.rsqrt(norm + 1e-8)

    def forward(self, x: torch.Tensor, w: torch.Tensor, on_activations: bool | None = None) -> torch.Tensor:
        """StyleGAN2's modulation and demodulation scale either the kernels or the activations: the
        same numbers. Products over B x c_out x c_in x 9 weights cost more than the convolution where
        channels are many and pixels few (1.3x the generator's step on a CPU), so by default those
        layers scale the activations and the others the kernels."""
        b, _, h, wd = x.shape
        style, mix = self.style(w), self.mix(w)
        kernel = self.kernel(w, mix)
        if on_activations is None:
            on_activations = self.c_out * self.c_in * 9 > (self.c_in + self.c_out) * h * wd
        if on_activations:
            x = x * style[:, :, None, None]
        else:
            kernel = kernel * style[:, None, :, None, None]
            if self.demodulate:
                kernel = kernel * torch.rsqrt(kernel.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        out = F.conv2d(x.reshape(1, b * self.c_in, h, wd), kernel.reshape(b * self.c_out, self.c_in, 3, 3),
                       padding=1, groups=b)  # one grouped convolution: sample i with its own kernel
        out = out.reshape(b, self.c_out, h, wd)
        if on_activations and self.demodulate:
            out = out * self.demodulation(mix, style)[:, :, None, None]
        return out + self.bias[None, :, None, None]


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
