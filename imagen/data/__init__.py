"""Datasets: the built-in emoji set, a folder of captioned images, or a Hugging Face dataset,
all turned into one cached on-disk form (`prepared.py`)."""

from __future__ import annotations

import os
from pathlib import Path

from .prepared import PreparedDataset


def default_cache_dir() -> Path:
    return Path(os.environ.get("IMAGEN_CACHE", "cache"))


def load_dataset(spec: str, cache_dir: str | Path | None = None) -> PreparedDataset:
    """"emoji" | "emoji:STYLE,STYLE" | "pokemon" | "hf:NAME_OR_PATH" | a folder path -> the prepared
    dataset (built on first use)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if spec == "emoji" or spec.startswith("emoji:"):
        from .emoji import load_emoji, parse_styles
        return load_emoji(cache, parse_styles(spec) if ":" in spec else None)
    if spec == "pokemon":
        from .pokemon import load_pokemon
        return load_pokemon(cache)
    if spec.startswith("hf:"):
        from .hf import load_hf
        name, _, split = spec[3:].partition("@")
        return load_hf(name, cache, split or "train")
    from .folder import load_folder
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"dataset {spec!r} not found: use 'emoji', 'emoji:STYLE,...', 'pokemon', a folder of "
                                "captioned images, or hf:NAME for a Hugging Face dataset")
    return load_folder(path, cache)


__all__ = ["PreparedDataset", "default_cache_dir", "load_dataset"]
