"""A folder of your own captioned images, in either of two layouts:

- the Hugging Face imagefolder convention: `metadata.jsonl` with one
  {"file_name": "0001.png", "text": "a red bird"} per line (sub-folders allowed);
- one caption file beside each image: `0001.png` + `0001.txt`.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

from PIL import Image

from .prepared import Item, PreparedDataset, build, is_prepared, square_sizes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class FileLoader:
    """Opens one image file and resizes it (picklable, for a process pool)."""

    def __init__(self, path: Path):
        self.source = str(path)

    def __call__(self) -> dict[int, Image.Image]:
        with Image.open(self.source) as im:
            im.load()
            return square_sizes(im)


def folder_items(folder: Path) -> tuple[list[Item], list[str]]:
    """The captioned images of `folder`, and the images left out for want of a caption (so they
    can be counted and named, not silently dropped)."""
    meta = folder / "metadata.jsonl"
    items: list[Item] = []
    uncaptioned: list[str] = []
    if meta.is_file():
        listed: set[Path] = set()
        for n, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                name, text = row["file_name"], row.get("text", row.get("caption"))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{meta}:{n}: expected {{\"file_name\": ..., \"text\": ...}}, "
                                 f"got {line[:80]!r}") from e
            listed.add((folder / name).resolve())
            if isinstance(text, str) and text.strip():
                items.append((FileLoader(folder / name), [text.strip()]))
            else:
                uncaptioned.append(f"{name} ({meta.name} line {n} has no text)")
        uncaptioned += [f"{path.relative_to(folder)} (not in {meta.name})" for path in _images(folder)
                        if path.resolve() not in listed]
        return items, uncaptioned
    for path in _images(folder):
        caption = path.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8", errors="replace").strip() if caption.is_file() else ""
        if text:
            items.append((FileLoader(path), [text]))
        else:
            why = "empty" if caption.is_file() else "missing"
            uncaptioned.append(f"{path.relative_to(folder)} ({caption.name} is {why})")
    return items, uncaptioned


def _images(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def _fingerprint(folder: Path) -> str:
    """Changes whenever a file in the folder is added, removed or modified."""
    h = hashlib.sha1(str(folder.resolve()).encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def load_folder(folder: Path, cache_dir: Path) -> PreparedDataset:
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    root = cache_dir / f"folder-{folder.resolve().name}-{_fingerprint(folder)}"
    if is_prepared(root):
        return PreparedDataset.open(root)
    items, uncaptioned = folder_items(folder)
    if not items:
        raise ValueError(f"{folder} has no captioned images: add metadata.jsonl "
                         "(lines of {\"file_name\": ..., \"text\": ...}) or a .txt caption beside each image")
    if uncaptioned:
        print(f"skipped {len(uncaptioned)} image(s) without a caption, e.g. {uncaptioned[0]}")
    info = {"source": f"folder:{folder.resolve()}", "uncaptioned": len(uncaptioned),
            "uncaptioned_examples": uncaptioned[:20]}
    with multiprocessing.get_context("spawn").Pool(max(1, min(4, multiprocessing.cpu_count()))) as pool:
        return build(root, items, len(items), info, f"preparing {folder.name}",
                     map_fn=lambda f, it: pool.imap(f, it, chunksize=16))
