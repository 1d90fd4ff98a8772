"""Any Hugging Face `datasets` dataset with an image column and a text column, by hub name
(where the user has it cached or can download it) or by local path, e.g.
`hf:reach-vb/pokemon-blip-captions` or `hf:/data/pokemon`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from .prepared import PreparedDataset, build, is_prepared, square_sizes

IMAGE_COLUMNS = ("image", "img", "picture")
TEXT_COLUMNS = ("text", "caption", "captions", "prompt", "description")


class PilLoader:
    def __init__(self, image: Image.Image, source: str):
        self.image, self.source = image, source

    def __call__(self) -> dict[int, Image.Image]:
        return square_sizes(self.image)


def _load_hf(name: str, split: str):
    try:
        import datasets
    except ImportError as e:
        raise RuntimeError("hf: datasets need the `datasets` package: pip install datasets") from e
    try:
        if Path(name).exists():
            path = Path(name)
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                ds = datasets.load_from_disk(str(path))
                return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        return datasets.load_dataset(name, split=split)
    except Exception as e:  # hub, network and format errors all mean the same thing to the user
        raise FileNotFoundError(f"could not load the Hugging Face dataset {name!r} (split {split!r}): "
                                f"{type(e).__name__}: {e}") from e


def _column(columns: list[str], wanted: tuple[str, ...], what: str, name: str) -> str:
    for c in wanted:
        if c in columns:
            return c
    raise ValueError(f"dataset {name!r} has no {what} column (looked for {wanted}; it has {columns})")


def load_hf(name: str, cache_dir: Path, split: str = "train") -> PreparedDataset:
    ds = _load_hf(name, split)
    key = hashlib.sha1(f"{name}:{split}:{getattr(ds, '_fingerprint', '')}".encode()).hexdigest()[:12]
    root = cache_dir / f"hf-{Path(name).name}-{key}"
    if is_prepared(root):
        return PreparedDataset.open(root)
    image_col = _column(ds.column_names, IMAGE_COLUMNS, "image", name)
    text_col = _column(ds.column_names, TEXT_COLUMNS, "text", name)

    def items():
        for i, row in enumerate(ds):
            text = row[text_col]
            if isinstance(text, list):
                text = text[0] if text else ""
            if isinstance(text, str) and text.strip():
                yield (PilLoader(row[image_col], f"{name}[{i}]"), [text.strip()])

    return build(root, items(), len(ds), {"source": f"hf:{name}", "split": split}, f"preparing {name}")
