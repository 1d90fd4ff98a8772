"""Caption variety for training (`python -m imagen.train --caption-variety`): every step, each
image of the batch gets a freshly drawn caption, and some images a new colour.

For each image it knows its name, its drawing style, its aliases and, when the drawing is clearly
of one colour, that colour. A draw then:

- recolours a share of the clearly coloured drawings into another hue class (colours.recolour_to)
  and says the new colour ("purple banana"), never for a (colour, concept) pair the hold-out rule keeps out;
- says the real colour of some others ("yellow banana"), under the same rule;
- with `tint`, tints the grey fill of a share of the grey-filled drawings (colours.tint_grey)
  and says the colour ("pink elephant"), under the same rule;
- frames the name (or an alias) in one of the training phrasings, and names the style, except for
  some images of the default style (see phrasing.varied_caption).
"""

from __future__ import annotations

import numpy as np
import torch

from .balance import concept_key
from .colours import (
    COLOUR_WORDS,
    HUE_CLASSES,
    MIN_GREY_FILL,
    chromatic_share,
    clear_colour,
    grey_fill_share,
    hue_histogram,
    is_held_out,
    recolour_to,
    tint_grey,
)
from .phrasing import TRAIN_TEMPLATES, CaptionPolicy, fill, varied_caption


def split_caption(variants: list[str]) -> tuple[str, str | None]:
    """An emoji image's caption variants ["penguin, openmoji style", "penguin"] -> ("penguin", "openmoji")."""
    main = variants[0]
    head, _, tail = main.rpartition(", ")
    if head and tail.endswith(" style"):
        return head, tail.removesuffix(" style")
    return main, None


class CaptionVariety:
    def __init__(self, captions: list[list[str]], images_64: np.ndarray, aliases: dict[str, tuple[str, ...]],
                 default_style: str | None, recolour: float = 0.3, policy: CaptionPolicy | None = None,
                 tint: float = 0.0):
        self.names, self.styles = zip(*(split_caption(v) for v in captions))
        self.concepts = [concept_key(n) for n in self.names]
        self.aliases = [aliases.get(n, ()) for n in self.names]
        # A name that already says a colour ("red apple", "blue heart") keeps it, and skin is not
        # recoloured ("waving hand, dark skin tone"): neither gets a colour word.
        colours = clear_colour(torch.from_numpy(chromatic_share(images_64)))
        self.colours = [None if COLOUR_WORDS.search(n) or n != c else colour
                        for n, c, colour in zip(self.names, self.concepts, colours)]
        # Grey-filled drawings have no hue to rotate: with `tint`, their fill is tinted instead.
        grey = grey_fill_share(images_64) >= MIN_GREY_FILL if tint > 0 else np.zeros(len(captions), bool)
        self.grey = [bool(g) and colour is None and not COLOUR_WORDS.search(n) and n == c
                     for g, colour, n, c in zip(grey, colours, self.names, self.concepts)]
        self.default_style = default_style
        self.recolour_share = recolour
        self.tint_share = tint
        self.policy = policy or CaptionPolicy()

    def draw(self, index: torch.Tensor, images: torch.Tensor, generator: torch.Generator,
             low_res: torch.Tensor | None = None) -> tuple[list[str], torch.Tensor, torch.Tensor | None]:
        """Captions for the images `index` and the images (B, 3, H, W) in [-1, 1], some recoloured;
        `low_res` (the SR stage's 64 px inputs) is recoloured alike. Every choice comes from `generator`."""
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        index = index.tolist()
        colour_words: list[str | None] = [None] * len(index)
        picked, own, targets = [], [], []  # own None: a grey fill, tinted
        for position, i in enumerate(index):
            colour, concept = self.colours[i], self.concepts[i]
            if colour is not None and rng.random() < self.recolour_share:
                options = [c for c in HUE_CLASSES if c != colour and not is_held_out(c, concept)]
            elif colour is not None and rng.random() < self.policy.own_colour and not is_held_out(colour, concept):
                colour_words[position] = colour
                continue
            elif self.grey[i] and rng.random() < self.tint_share:
                options = [c for c in HUE_CLASSES if not is_held_out(c, concept)]
            else:
                continue
            if options:
                picked.append(position)
                own.append(colour)
                targets.append(options[rng.integers(len(options))])
        if picked:
            reference = images if low_res is None else low_res  # the 64 px image decides the colour
            # Keep a recolouring only where the drawing then reads as the colour it will be called
            # (a light drawing turned to red reads as pink): the others stay as they were.
            reads = clear_colour(hue_histogram(_recoloured(reference[picked], own, targets)))
            kept = [k for k, t in enumerate(targets) if reads[k] == t]
            if kept:
                rows = [picked[k] for k in kept]
                plan = ([own[k] for k in kept], [targets[k] for k in kept], reference[rows])
                images = _recolour_rows(images, rows, *plan)
                low_res = None if low_res is None else _recolour_rows(low_res, rows, *plan)
            for k in kept:
                colour_words[picked[k]] = targets[k]
        captions = [varied_caption(self.names[i], self.styles[i], rng, self.policy, colour_words[p], self.aliases[i],
                                   self.default_style) for p, i in enumerate(index)]
        return captions, images, low_res


def _recoloured(images: torch.Tensor, own: list[str | None], targets: list[str],
                reference: torch.Tensor | None = None) -> torch.Tensor:
    """Rows with an own colour rotated into their target (recolour_to), rows without (grey fill) tinted."""
    out = images.float().clone()
    hued = [k for k, o in enumerate(own) if o is not None]
    grey = [k for k, o in enumerate(own) if o is None]
    if hued:
        out[hued] = recolour_to(images[hued], [own[k] for k in hued], [targets[k] for k in hued],
                                None if reference is None else reference[hued])
    if grey:
        out[grey] = tint_grey(images[grey], [targets[k] for k in grey], None if reference is None else reference[grey])
    return out


def _recolour_rows(images: torch.Tensor, rows: list[int], own: list[str | None], targets: list[str],
                   reference: torch.Tensor) -> torch.Tensor:
    images = images.clone()
    images[rows] = _recoloured(images[rows], own, targets, reference).to(images.dtype)
    return images


def variety_words(aliases: list[str]) -> list[str]:
    """Every word a drawn caption can hold beyond the dataset's own captions (the phrasings, the
    colour words and the aliases): a text encoder pruned to a vocabulary must keep them all."""
    return [fill(t, "x") for t in TRAIN_TEMPLATES] + [fill(t, "apple") for t in TRAIN_TEMPLATES] \
        + list(HUE_CLASSES) + list(aliases)
