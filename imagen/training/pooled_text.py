"""Teach the base U-Net's pooled text path to read a framed caption as it reads the bare one.

The base U-Net reads the caption twice: cross-attention over the token embeddings, and an
attention-pooled embedding added to the timestep embedding (`unet.add_embedding`, IF's "text"
addition embedding). Asked "a cute little penguin", the frozen text encoder still points at
"penguin" (`--mode phrasing` scores it), and so does the cross-attention path; the learned pooling
does not, and the drawing follows the pooling. Feeding the pooled path the bare name while the
cross-attention reads the whole phrase brings most of the drawing back (the training log).

So this trains only that small module (0.5M parameters) as a student of its own frozen copy:

    student(frame(x) + style)  ~  teacher(x + style)     framed captions read as their bare caption
    student(x + style)         ~  teacher(x + style)     bare captions and the empty one left alone

Frames are the caption-variety training phrasings (never the held-out ones), colour words obey
the hold-out rule, and no image or U-Net pass is involved, so a step costs two text-encoder passes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..data.balance import concept_key
from ..data.colours import HUE_CLASSES, is_held_out
from ..data.phrasing import fill, named_object, style_suffix
from ..text_encoder import TextEncoder


@dataclass(frozen=True)
class AlignShares:
    """What a drawn caption pair is: framed (else bare, or the empty caption), and its extras."""

    framed: float = 0.7
    composed: float = 0.0  # share of framed captions whose words before and after x come from two frames
    empty: float = 0.03
    alias: float = 0.2
    colour: float = 0.3
    styled: float = 0.5


def caption_pair(name: str, style: str | None, rng: np.random.Generator, frames: tuple[str, ...],
                 aliases: tuple[str, ...] = (), shares: AlignShares = AlignShares()) -> tuple[str, str]:
    """(what the student reads, what the teacher reads): a framed caption and its bare caption, or a
    bare caption (or the empty one) twice. "waving hand, dark skin tone": the frame goes around the hand."""
    x, comma, qualifier = named_object(name, aliases, rng, shares.alias)
    if rng.random() < shares.colour:
        colour = HUE_CLASSES[rng.integers(len(HUE_CLASSES))]
        if not is_held_out(colour, concept_key(name)):
            x = f"{colour} {x}"
    suffix = comma + qualifier + (style_suffix(style) if style is not None and rng.random() < shares.styled else "")
    draw = rng.random()
    if draw < shares.framed:
        frame = frames[rng.integers(len(frames))]
        if rng.random() < shares.composed:  # "a tiny {x}" and "{a} {x} in emoji form": "a tiny {x} in emoji form"
            frame = frame.split("{x}")[0] + "{x}" + frames[rng.integers(len(frames))].split("{x}")[1]
        return fill(frame, x) + suffix, x + suffix
    if draw < shares.framed + shares.empty:
        return "", ""
    return x + suffix, x + suffix


class PooledTextAligner:
    """The student (trained), its frozen teacher, and their loss on a batch of caption pairs."""

    def __init__(self, add_embedding: torch.nn.Module, encoder: TextEncoder, lr: float = 3e-4):
        self.teacher = copy.deepcopy(add_embedding).float().eval().requires_grad_(False)
        self.student = copy.deepcopy(add_embedding).float().train().requires_grad_(True)
        self.encoder = encoder
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=lr, weight_decay=0.0)

    def loss(self, read: list[str], target: list[str]) -> torch.Tensor:
        """Mean squared error of student(read) from teacher(target), over the target's variance."""
        texts = list(dict.fromkeys(read + target))  # a bare pair reads what it aims at: encoded once
        row = {text: k for k, text in enumerate(texts)}
        with torch.no_grad():
            embeds = self.encoder.encode(texts, use_cache=False).text_embeds.float()
            goal = self.teacher(embeds[[row[t] for t in target]]).clone()
            seen = embeds[[row[t] for t in read]].clone()
        return torch.nn.functional.mse_loss(self.student(seen), goal) / goal.var().clamp(min=1e-8)

    def step(self, read: list[str], target: list[str]) -> float:
        loss = self.loss(read, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

