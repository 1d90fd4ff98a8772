"""Writing files so that a reader, or a kill at any moment, never meets half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object], durable: bool = False) -> None:
    """`write(tmp)` into a temporary sibling, then rename it onto `path`: a reader sees the old file or
    the new one, never half of one, and a failed write leaves no temporary file behind. `durable`
    flushes the file to disk before the rename (what a training checkpoint's pointer needs to
    survive a power cut, not only a kill)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    """atomic_write for a text file (UTF-8)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable)
