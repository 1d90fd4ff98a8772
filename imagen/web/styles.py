"""Drawing styles in the prompt. The emoji model learned every emoji as OpenMoji and as Twemoji drew
it, captioned with the style it names ("penguin, openmoji style"); the page adds the picked style
to a prompt that names none, in the prompt box itself, so the caption the model reads is on screen."""

from __future__ import annotations

import re
from collections.abc import Sequence

AS_TYPED = "as typed"  # the style choice that leaves the prompt alone


def _style_key(style: str) -> str:
    """What marks a prompt as naming a style: "twemoji" for "twemoji style"."""
    return style.lower().removesuffix(" style").strip()


def names_a_style(prompt: str, styles: Sequence[str]) -> bool:
    """Whether the prompt names any of the styles, anywhere ("a twemoji cat" does)."""
    return any(re.search(rf"\b{re.escape(_style_key(s))}\b", prompt.lower()) for s in styles)


def with_style(prompt: object, style: object, styles: Sequence[str]) -> object:
    """The prompt with ", {style}" added when it names none of the checkpoint's styles. The emoji
    model learned each emoji in both styles and under its bare name; a bare name blends the two
    styles' shapes, so a prompt that names one draws cleaner ones. A prompt that names a style keeps
    its own; anything that is not text goes through unchanged, for the handler to refuse by name."""
    if not isinstance(prompt, str) or not prompt.strip() or style not in styles or names_a_style(prompt, styles):
        return prompt
    return f"{prompt.strip().rstrip(',').rstrip()}, {style}"


def restyle(prompt: object, style: object, styles: Sequence[str]) -> object:
    """What picking a style does to the prompt box: its trailing style replaced by `style`, or
    removed for AS_TYPED."""
    if not isinstance(prompt, str):
        return prompt
    keys = "|".join(re.escape(_style_key(s)) for s in styles)
    bare = re.sub(rf"\s*,?\s*\b(?:{keys})\s+style\s*$", "", prompt.strip(), flags=re.IGNORECASE) if keys else prompt
    return with_style(bare, style, styles) if bare.strip() else prompt
