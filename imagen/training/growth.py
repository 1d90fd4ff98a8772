"""Function-preserving deepening of a trained U-Net (in the manner of Net2Net's "deeper" operator).

A warm start into a preset with more layers at some resolutions (e.g. `cpu` -> `cpu-deep`, one
more resnet + attention layer at 16 and 8 px) should begin from the trained model's function, not
from a network that has forgotten it. Each added layer starts as the identity:

- down block, level L with n old layers and n + k new: layers 0..n-1 are the old ones; the added
  layers n..n+k-1 have their last projections (the resnet's conv2, the attention's to_out)
  zeroed, so each returns its input, and their skips duplicate layer n-1's output;
- up block of that level: it pops those skips first, so resnet 0 is the old resnet 0 (its skip
  is a duplicate of the old one), resnets 1..k are added, and the old resnets 1.. follow. An added
  up resnet sees [h, skip] and must return h: conv2 zeroed and a 1x1 shortcut [I | 0] that drops
  the skip.

The new layers get gradients at once (a zeroed last projection still has a gradient), so training
grows them from the identity.
"""

from __future__ import annotations

import re

import torch


def _layers(config: dict) -> list[int]:
    n = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    return list(n) if isinstance(n, (list, tuple)) else [n] * levels


def _up_layer(name: str) -> tuple[int, str, int, str] | None:
    """(B, "resnets", i, "conv1.weight") for a layer of up block B, else None."""
    m = re.match(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$", name)
    return (int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)) if m else None


def load_deepened(unet: torch.nn.Module, state: dict[str, torch.Tensor], old_config: dict) -> None:
    """Load `state` (a U-Net built from `old_config`) into `unet`, which has more layers per level
    and is the same otherwise, so that `unet` computes the same function. The added layers keep
    `unet`'s fresh initialisation except for the projections that make them the identity."""
    new_config = dict(unet.config)
    differ = [k for k, v in old_config.items() if not k.startswith("_") and k != "layers_per_block"
              and _plain(new_config.get(k)) != _plain(v)]
    if differ:
        raise ValueError(f"can only deepen: the U-Net configs also differ in {differ}")
    old, new = _layers(old_config), _layers(new_config)
    if len(old) != len(new) or any(b < a for a, b in zip(old, new)):
        raise ValueError(f"can only deepen: layers per level {old} -> {new}")
    levels, added = len(old), [b - a for a, b in zip(old, new)]
    # Copies of the fresh weights: _identity edits them, and `unet` is untouched until the load.
    out = {k: v.clone() for k, v in unet.state_dict().items()}
    for name, tensor in state.items():
        up = _up_layer(name)
        if up:
            block, part, i, rest = up
            # The old up layers 1.. move past the added ones (see the module docstring).
            name = f"up_blocks.{block}.{part}.{i if i == 0 else i + added[levels - 1 - block]}.{rest}"
        if name not in out or out[name].shape != tensor.shape:
            raise ValueError(f"can only deepen: {name} has no place of that shape in the new U-Net")
        out[name] = tensor
    for level in range(levels):
        for j in range(added[level]):
            _identity(out, f"down_blocks.{level}", old[level] + j)
            _identity(out, f"up_blocks.{levels - 1 - level}", 1 + j)
    unet.load_state_dict(out)


def _plain(v: object) -> object:
    return list(v) if isinstance(v, (list, tuple)) else v


def _identity(out: dict[str, torch.Tensor], block: str, index: int) -> None:
    """Make layer `index` of `block` return its input h: zero the resnet's conv2 and the
    attention's to_out; an up resnet sees [h, skip], so its 1x1 shortcut becomes [I | 0]."""
    layer = (f"{block}.resnets.{index}.", f"{block}.attentions.{index}.")
    for k in out:
        if k.startswith(layer) and (".conv2." in k or ".to_out." in k):
            out[k].zero_()
    shortcut = f"{block}.resnets.{index}.conv_shortcut"
    if f"{shortcut}.weight" in out:
        w = out[f"{shortcut}.weight"]  # (C_out, C_in, 1, 1): h comes first in the concat
        w.zero_()
        w[:, :w.shape[0], 0, 0] = torch.eye(w.shape[0], dtype=w.dtype)
        out[f"{shortcut}.bias"].zero_()
