"""Captions the way people write them: each training image under many sentences.

A model that learned every emoji under exactly two captions ("penguin, openmoji style" and
"penguin") learns those strings, not the language: "a picture of a penguin" falls apart. Imagen's
frozen text encoder already places "a picture of a penguin" near "penguin"; training on varied
captions gives the U-Net the chance to use that. `varied_caption` builds one caption for one image
from its name, its style, an alias, a colour word and a frame ("an emoji of a {x}"), each drawn at
random.

HELD_OUT_TEMPLATES are never used in training: the evaluation asks for concepts in those
phrasings to measure whether the model follows sentences it never saw (python -m imagen.evaluate
--mode phrasing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# "{x}" is the object ("penguin", "purple banana"); "{a}" its article ("a" or "an").
# The frames fine-tune 17 trained with: the name, articles, "emoji", "icon", "a drawing of".
CORE_TEMPLATES = (
    "{a} {x}", "the {x}", "one {x}",
    "{x} emoji", "{a} {x} emoji", "an emoji of {a} {x}", "emoji of {a} {x}",
    "{x} icon", "{a} {x} icon", "an icon of {a} {x}", "a flat icon of {a} {x}",
    "a drawing of {a} {x}", "a cartoon {x}", "a cartoon of {a} {x}", "a sketch of {a} {x}",
    "an image of {a} {x}", "{x} clipart", "clip art of {a} {x}", "a sticker of {a} {x}",
    "a doodle of {a} {x}", "a symbol of {a} {x}", "a small {x}", "a simple {x}", "{x} graphic",
)
# Everyday sentences and adjectives, so that no single frame is what the model learns; none
# shares a word with HELD_OUT_TEMPLATES but "a", "an" and "of" (a test checks it).
EVERYDAY_TEMPLATES = (
    "this {x}", "that's {a} {x}", "it's {a} {x}", "look, {a} {x}", "there's {a} {x}", "i want {a} {x}",
    "show {a} {x}", "make {a} {x}", "create {a} {x}", "generate {a} {x}", "{a} {x}, please", "{x} please",
    "{x}!", "my {x}", "just {a} {x}", "a single {x}", "a big {x}", "a tiny {x}", "a happy {x}",
    "a funny {x}", "a nice {x}", "a pretty {x}", "a colorful {x}", "a plain {x}", "a classic {x}",
    "a small simple {x}", "a big friendly {x}", "a flat {x}", "the {x} emoji", "the emoji for {x}",
    "the icon for {x}", "emoji: {x}", "icon: {x}", "{x} symbol", "a vector {x}", "{x} vector art",
    "a flat drawing of {a} {x}", "a digital drawing of {a} {x}", "an emoji showing {a} {x}",
    "an icon showing {a} {x}", "an emoji that shows {a} {x}", "{a} {x} in emoji form", "{a} {x}, flat design",
    "{a} {x} cartoon", "a rendering of {a} {x}", "a graphic of {a} {x}", "art of {a} {x}",
    "artwork of {a} {x}", "a design of {a} {x}", "a painting of {a} {x}", "emoji art of {a} {x}",
)
TRAIN_TEMPLATES = CORE_TEMPLATES + EVERYDAY_TEMPLATES
# Which frames a run trains with (`--phrasings`): "core" is fine-tune 17's 24, "everyday" all 75.
PHRASING_SETS = {"core": CORE_TEMPLATES, "everyday": TRAIN_TEMPLATES}
# Never produced in training (a test checks it): the evaluation's unseen phrasings.
HELD_OUT_TEMPLATES = (
    "a picture of {a} {x}",
    "an illustration of {a} {x}",
    "draw me {a} {x}",
    "{a} {x} on a white background",
    "here is {a} {x}",
    "a cute little {x}",
)

_AN = re.compile(r"^(?:[aeiou]|8|11 |18 )", re.IGNORECASE)
_A = re.compile(r"^(?:uni|use|one|eu)", re.IGNORECASE)  # vowels that sound like a consonant


def article(x: str) -> str:
    """'a' or 'an' before x: 'an apple', 'a banana', 'a unicorn', 'an 8'."""
    x = x.strip()
    return "an" if _AN.match(x) and not _A.match(x) else "a"


def fill(template: str, x: str) -> str:
    return template.format(x=x, a=article(x))


@dataclass(frozen=True)
class CaptionPolicy:
    """How often each kind of variation is drawn."""

    template: float = 0.65  # share framed by one of `templates`; the rest is the bare name
    alias: float = 0.2  # share that uses one of the name's aliases instead of the name
    own_colour: float = 0.25  # share of clearly one-coloured drawings whose colour word is said
    unstyled: float = 0.5  # share of the default style's images captioned without the style
    templates: tuple[str, ...] = TRAIN_TEMPLATES  # the frames drawn from (PHRASING_SETS)


def phrasing_set(name: str) -> tuple[str, ...]:
    """The training frames of PHRASING_SETS[name], or a clear error."""
    if name not in PHRASING_SETS:
        raise ValueError(f"phrasings must be one of {', '.join(PHRASING_SETS)}, got {name!r}")
    return PHRASING_SETS[name]


def named_object(name: str, aliases: tuple[str, ...], rng: np.random.Generator,
                 alias_share: float) -> tuple[str, str, str]:
    """(object, ", " or "", qualifier): what a frame goes around, the name or one of its aliases.
    "waving hand, dark skin tone": the frame goes around the hand, the qualifier stays after it."""
    x, comma, qualifier = name.partition(", ")
    if aliases and rng.random() < alias_share:
        x, comma, qualifier = aliases[rng.integers(len(aliases))], "", ""
    return x, comma, qualifier


def style_suffix(style: str) -> str:
    return f", {style} style"


def varied_caption(name: str, style: str | None, rng: np.random.Generator, policy: CaptionPolicy,
                   colour: str | None = None, aliases: tuple[str, ...] = (), default_style: str | None = None) -> str:
    """One training caption. `colour` is the colour word to say (already checked against the
    hold-out rule), or None. An image of `default_style` is captioned without a style with
    probability `policy.unstyled`; an image of any other style always names it, so a caption with
    no style asks for one drawing (the default style's), never a blend of two."""
    x, comma, qualifier = named_object(name, aliases, rng, policy.alias)
    if colour is not None:
        x = f"{colour} {x}"
    frames = policy.templates
    caption = fill(frames[rng.integers(len(frames))], x) if rng.random() < policy.template else x
    caption += comma + qualifier
    if style is not None and (style != default_style or rng.random() >= policy.unstyled):
        caption += style_suffix(style)
    return caption
