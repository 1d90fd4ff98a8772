"""The two U-Net stages of the cascade, as diffusers `UNet2DConditionModel`s.

Both are configured the way DeepFloyd IF configures Imagen:
- the text conditions every block twice: cross-attention over the token embeddings at the low
  resolutions, and an attention-pooled text embedding added to the timestep embedding
  (`addition_embed_type="text"`);
- the super-resolution (SR) stage sees the upsampled low-res image concatenated to x_t
  (6 input channels) and the noise-augmentation level through `class_embed_type="timestep"`.

Presets are named: the `cpu` ones (about 6M parameters) sample in seconds on 2 cores; the
`gpu` ones are for training on an accelerator when one is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel


@dataclass(frozen=True)
class UNetPreset:
    """Width and depth of one U-Net stage. `attention` marks the levels with cross-attention;
    `layers_per_block` is one count for every level or one per level."""

    block_out_channels: tuple[int, ...]
    attention: tuple[bool, ...]
    layers_per_block: int | tuple[int, ...] = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 8


# For tests and smoke runs: the whole cascade samples in about a second.
_TINY = dict(attention_head_dim=8, norm_num_groups=4)

BASE_PRESETS: dict[str, UNetPreset] = {
    "tiny": UNetPreset((8, 16, 16), (False, False, True), **_TINY),
    # 64 -> 32 -> 16 -> 8 px; attention at 16 and 8 px. 6.1M parameters.
    "cpu": UNetPreset((32, 64, 128, 128), (False, False, True, True)),
    # `cpu` with a second resnet + attention layer at 16 and 8 px, where the shapes are laid out:
    # 8.2M parameters. A warm start from a `cpu` checkpoint begins from its function (imagen/training/growth.py).
    "cpu-deep": UNetPreset((32, 64, 128, 128), (False, False, True, True), layers_per_block=(1, 1, 2, 2)),
    # 19.0M parameters: worth it when trained on a GPU; still samples in seconds on a CPU.
    "cpu-large": UNetPreset((32, 64, 128, 256), (False, False, True, True), layers_per_block=2),
    "gpu": UNetPreset((64, 128, 256, 384), (False, True, True, True), layers_per_block=2,
                      attention_head_dim=64, norm_num_groups=32),
}

SR_PRESETS: dict[str, UNetPreset] = {
    "tiny": UNetPreset((8, 8, 8, 16), (False, False, False, True), **_TINY),
    # 256 -> 128 -> 64 -> 32 -> 16 px; cross-attention only at 16 px (Imagen's Efficient U-Net
    # keeps attention off the high resolutions, where it would cost the most). 5.8M parameters.
    "cpu": UNetPreset((16, 32, 64, 128, 128), (False, False, False, False, True)),
    "gpu": UNetPreset((32, 64, 128, 256, 256), (False, False, False, True, True),
                      layers_per_block=2, attention_head_dim=64),
}

STAGES = ("base", "sr")


def unet_config(stage: str, preset: str | UNetPreset, text_embed_dim: int, self_condition: bool = False) -> dict:
    """The `UNet2DConditionModel` keyword arguments for a stage ("base" or "sr") and a preset.
    `self_condition`: the base stage also sees its previous estimate of x0 (self_conditioning.py)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    if self_condition and stage != "base":
        raise ValueError("self-conditioning is for the base stage only")
    presets = BASE_PRESETS if stage == "base" else SR_PRESETS
    if isinstance(preset, str):
        if preset not in presets:
            raise ValueError(f"unknown {stage} preset {preset!r}; expected one of {sorted(presets)}")
        preset = presets[preset]
    down = tuple("SimpleCrossAttnDownBlock2D" if a else "ResnetDownsampleBlock2D" for a in preset.attention)
    up = tuple("SimpleCrossAttnUpBlock2D" if a else "ResnetUpsampleBlock2D" for a in reversed(preset.attention))
    config = dict(
        sample_size=64 if stage == "base" else 256,
        # SR: x_t concatenated with the upsampled low-res image along channels; a self-conditioned
        # base stage: x_t beside its previous estimate of x0.
        in_channels=6 if stage == "sr" or self_condition else 3,
        out_channels=3,
        block_out_channels=preset.block_out_channels,
        layers_per_block=preset.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        # SR trains on crops and samples full images: self-attention would see 16x more tokens at
        # sampling than in training, so the SR stage keeps text cross-attention only (as Imagen's
        # SR models do).
        only_cross_attention=stage == "sr",
        cross_attention_dim=preset.block_out_channels[-1],
        encoder_hid_dim=text_embed_dim,
        attention_head_dim=preset.attention_head_dim,
        # Pooled text added to the time embedding (IF's "text" addition embedding).
        addition_embed_type="text",
        addition_embed_type_num_heads=_pool_heads(text_embed_dim),
        resnet_time_scale_shift="scale_shift",
        norm_num_groups=preset.norm_num_groups,
        act_fn="silu",
    )
    if stage == "sr":
        # The augmentation noise level enters like a second timestep.
        config["class_embed_type"] = "timestep"
    return config


def _pool_heads(dim: int) -> int:
    """The largest head count <= 8 that divides the text width (384 -> 8, 512 -> 8, 1024 -> 8)."""
    return max(h for h in range(1, 9) if dim % h == 0)


def build_unet(stage: str, preset: str | UNetPreset, text_embed_dim: int,
               self_condition: bool = False) -> UNet2DConditionModel:
    """A freshly initialised U-Net for `stage`."""
    return UNet2DConditionModel(**unet_config(stage, preset, text_embed_dim, self_condition))


def is_self_conditioned(stage: str, unet: UNet2DConditionModel) -> bool:
    """Whether a trained U-Net of `stage` takes its previous x0 estimate beside x_t: a base stage
    with 6 input channels (a plain one has 3; the SR stage's 6 are x_t and the low-res image)."""
    return stage == "base" and getattr(unet, "module", unet).config.in_channels == 6


def unet_forward(unet: UNet2DConditionModel, x_in: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor,
                 text_mask: torch.Tensor, class_labels: torch.Tensor | None = None,
                 pooled_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """One network evaluation, shared by training and sampling: (B, C, H, W) -> (B, 3, H, W).

    diffusers' added-KV attention pads the text mask for self-attention keys, which a
    cross-attention-only block (the SR stage) does not have; there the mask is left out and the
    zeroed padding tokens are attended like any token (always the same 32, in training as in
    sampling).

    `pooled_embeds` (B, L, D): what the pooled text path (`add_embedding`, added to the timestep
    embedding) reads instead of `text_embeds`, which cross-attention still reads (pooled-text dropout)."""
    inner = getattr(unet, "module", unet)  # DDP wraps the model
    cross_only = inner.config.only_cross_attention
    mask = None if (cross_only if isinstance(cross_only, bool) else any(cross_only)) else text_mask
    handle = None
    if pooled_embeds is not None:  # diffusers feeds add_embedding the cross-attention's input: swap it there
        handle = inner.add_embedding.register_forward_pre_hook(
            lambda module, args: (pooled_embeds.to(args[0].dtype), *args[1:]))
    try:
        return unet(x_in, t, encoder_hidden_states=text_embeds, encoder_attention_mask=mask,
                    class_labels=class_labels, return_dict=False)[0]
    finally:
        if handle is not None:
            handle.remove()
