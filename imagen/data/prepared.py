"""The one on-disk form every dataset is turned into before training: square uint8 images at
64 and 256 px, and the captions of each image.

    cache/<dataset-key>/images_64.npy    (N, 64, 64, 3) uint8
    cache/<dataset-key>/images_256.npy   (N, 256, 256, 3) uint8
    cache/<dataset-key>/captions.json    N lists of caption variants; the first is the main one
    cache/<dataset-key>/info.json        where it came from, how many images were skipped

Built once (into a temporary folder that is renamed into place when complete, so an
interrupted build leaves nothing that looks finished) and memory-mapped by every later run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

SIZES = (64, 256)


@dataclass
class PreparedDataset:
    root: Path
    images_64: np.ndarray  # (N, 64, 64, 3) uint8, memory-mapped
    images_256: np.ndarray  # (N, 256, 256, 3) uint8, memory-mapped
    captions: list[list[str]]  # caption variants per image; [0] is the main caption
    info: dict

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def main_captions(self) -> list[str]:
        return [c[0] for c in self.captions]

    @classmethod
    def open(cls, root: Path) -> PreparedDataset:
        return cls(
            root=root,
            images_64=np.load(root / "images_64.npy", mmap_mode="r"),
            images_256=np.load(root / "images_256.npy", mmap_mode="r"),
            captions=json.loads((root / "captions.json").read_text()),
            info=json.loads((root / "info.json").read_text()),
        )


def is_prepared(root: Path) -> bool:
    return (root / "info.json").is_file()


# An item is a loader for one image and its caption variants. A loader that raises marks the
# image unreadable: it is skipped and counted, never fatal.
Item = tuple[Callable[[], dict[int, Image.Image]], list[str]]


def square_sizes(image: Image.Image) -> dict[int, Image.Image]:
    """Centre-crop to a square, flatten transparency onto white, resize to each of SIZES."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    image = image.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    return {s: image.resize((s, s), Image.Resampling.LANCZOS) for s in SIZES}


def build(root: Path, items: Iterable[Item], total: int, info: dict, desc: str,
          map_fn: Callable = map) -> PreparedDataset:
    """Run every loader, write the arrays, and move the finished folder to `root`.
    `map_fn` may be a process pool's imap to load in parallel."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        arrays = {s: np.lib.format.open_memmap(tmp / f"images_{s}.npy", mode="w+", dtype=np.uint8,
                                               shape=(total, s, s, 3)) for s in SIZES}
        captions: list[list[str]] = []
        skipped: list[str] = []
        for result, caps in tqdm(map_fn(_load, items), total=total, desc=desc, unit="img"):
            if isinstance(result, str):
                skipped.append(result)
                continue
            for s in SIZES:
                arrays[s][len(captions)] = result[s]
            captions.append(caps)
        n = len(captions)
        if n == 0:
            raise ValueError(f"no readable images in {desc} ({len(skipped)} unreadable)")
        for s in SIZES:
            arrays[s].flush()
            del arrays[s]
            if n < total:  # drop the rows that skipped images left empty
                full = np.load(tmp / f"images_{s}.npy", mmap_mode="r")
                np.save(tmp / f"images_{s}.part.npy", np.ascontiguousarray(full[:n]))
                del full
                (tmp / f"images_{s}.part.npy").replace(tmp / f"images_{s}.npy")
        (tmp / "captions.json").write_text(json.dumps(captions, ensure_ascii=False))
        info = {**info, "count": n, "skipped": len(skipped), "skipped_examples": skipped[:20]}
        (tmp / "info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}")
    return PreparedDataset.open(root)


def _load(item: Item) -> tuple[dict[int, np.ndarray] | str, list[str]]:
    loader, captions = item
    try:
        images = loader()
        return {s: np.asarray(images[s].convert("RGB"), dtype=np.uint8) for s in SIZES}, captions
    except Exception as e:  # any unreadable image is skipped and reported, whatever the reason
        return f"{getattr(loader, 'source', '?')}: {type(e).__name__}: {e}", captions
