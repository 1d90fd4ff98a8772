"""The generator: noise z and a caption -> images at 8, 16, 32 and 64 px, in one forward pass.

    z (B, z_dim) + pooled text --mapping MLP--> style w (B, w_dim)
    a learned 4x4 constant --AdaptiveConv(w)--> 4 px
    each block: upsample x2, AdaptiveConv(w) x 2, cross-attention to the words (at 8 and 16 px),
                an RGB output added to the upsampled RGB of the block before (StyleGAN2's skips)

`text` picks how much of the caption it sees (the ablation): "none" (unconditional), "pooled" (the
sentence, through w only) or "words" (also cross-attention to every word).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .layers import AdaptiveConv, WordAttention, pooled_text

TEXT_MODES = ("none", "pooled", "words")


@dataclass(frozen=True)
class GeneratorConfig:
    text_dim: int = 384
    z_dim: int = 128
    w_dim: int = 256
    channels: tuple[int, ...] = (176, 176, 128, 64, 32)  # at 4, 8, 16, 32 and 64 px: 6.1M parameters
    kernels: int = 4  # the kernel bank's size; 1 turns sample-adaptive selection off
    attention: tuple[int, ...] = (8, 16)  # resolutions with cross-attention to the words
    mapping_layers: int = 4
    text: str = "words"

    def __post_init__(self) -> None:
        if self.text not in TEXT_MODES:
            raise ValueError(f"text must be one of {TEXT_MODES}, got {self.text!r}")
        if self.kernels < 1:
            raise ValueError(f"kernels must be at least 1, got {self.kernels}")

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        """From its JSON form (lists for tuples); an unknown key is an error, not ignored."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown generator setting(s) {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def resolutions(self) -> list[int]:
        return [4 * 2**i for i in range(len(self.channels))]


GAN_PRESETS = {
    "tiny": GeneratorConfig(channels=(16, 16, 8, 8, 8), w_dim=32, z_dim=16, mapping_layers=2),
    "cpu": GeneratorConfig(),
}


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        text_in = config.text_dim if config.text != "none" else 0
        layers: list[nn.Module] = []
        width = config.z_dim + text_in
        for _ in range(config.mapping_layers):
            layers += [nn.Linear(width, config.w_dim), nn.LeakyReLU(0.2)]
            width = config.w_dim
        self.mapping = nn.Sequential(*layers)
        self.const = nn.Parameter(torch.randn(1, c[0], 4, 4))
        self.first = AdaptiveConv(c[0], c[0], config.w_dim, config.kernels)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        self.to_rgb = nn.ModuleList([nn.Conv2d(c[0], 3, 1)])
        for i, r in enumerate(config.resolutions[1:], start=1):
            self.blocks.append(nn.ModuleList([AdaptiveConv(c[i - 1], c[i], config.w_dim, config.kernels),
                                              AdaptiveConv(c[i], c[i], config.w_dim, config.kernels)]))
            if config.text == "words" and r in config.attention:
                self.attention[str(r)] = WordAttention(c[i], config.text_dim)
            self.to_rgb.append(nn.Conv2d(c[i], 3, 1))

    def style(self, z: torch.Tensor, text_embeds: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """The mapping network: (B, z_dim) and the caption -> w (B, w_dim)."""
        z = F.normalize(z, dim=-1) * z.shape[-1] ** 0.5
        x = z if self.config.text == "none" else torch.cat([z, pooled_text(text_embeds, text_mask)], dim=-1)
        return self.mapping(x)

    def forward(self, z: torch.Tensor, text_embeds: torch.Tensor, text_mask: torch.Tensor,
                w: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Images at 8, 16, 32 and 64 px (each (B, 3, r, r), about [-1, 1]); `w` skips the mapping."""
        w = self.style(z, text_embeds, text_mask) if w is None else w
        x = F.leaky_relu(self.first(self.const.expand(w.shape[0], -1, -1, -1), w), 0.2)
        rgb = self.to_rgb[0](x)
        outputs = []
        for i, (conv_a, conv_b) in enumerate(self.blocks, start=1):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv_a(x, w), 0.2)
            x = F.leaky_relu(conv_b(x, w), 0.2)
            key = str(x.shape[-1])
            if key in self.attention:
                x = self.attention[key](x, text_embeds, text_mask)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + self.to_rgb[i](x)
            outputs.append(rgb)
        return outputs

    def config_dict(self) -> dict:
        return asdict(self.config)
