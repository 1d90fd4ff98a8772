"""Which checkpoint the page serves, what it says when that checkpoint cannot serve, and the
pipeline itself, loaded on the first request, once, for every session."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import CONFIG_NAME, DEFAULT_CHECKPOINT, CheckpointError, PipelineConfig, Settings
from .inputs import user_error

if TYPE_CHECKING:  # the pipeline (and diffusers) load on the first request, not with the page
    from ..pipeline import ImagenPipeline


def checkpoint_path() -> Path:
    """The checkpoint the demo serves: env IMAGEN_CHECKPOINT, else checkpoints/emoji."""
    return Path(os.environ.get("IMAGEN_CHECKPOINT") or DEFAULT_CHECKPOINT)


def no_weights_message(path: Path) -> str:
    return (f"No trained weights are installed: there is no checkpoint at {path}. Train them with "
            "`python -m imagen.train` and export them with `python -m imagen.export` (see the README), "
            "or set IMAGEN_CHECKPOINT to a checkpoint folder.")


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot serve, judged from its small JSON alone (no weights are
    loaded); None when it looks usable."""
    if not path.exists():
        return no_weights_message(path)
    if not (path / CONFIG_NAME).is_file():
        return f"The checkpoint at {path} cannot be used: it has no {CONFIG_NAME}."
    try:
        PipelineConfig.load(path / CONFIG_NAME)
    except CheckpointError as e:
        return f"The checkpoint at {path} cannot be used: {e}"
    return None


def page_status(path: Path | None = None) -> str:
    """What the status line says when the page opens: an invitation, or why Generate cannot work."""
    problem = checkpoint_problem(checkpoint_path() if path is None else path)
    return "Type a prompt and press Generate." if problem is None else f"**{problem}**"


def read_config(path: Path) -> PipelineConfig:
    """The checkpoint's small JSON alone (defaults, stages, styles), so the page can show them
    without loading any weights; the package's own config when there are no weights yet or the
    JSON is broken (the page still opens and says why)."""
    try:
        return PipelineConfig.load(path / CONFIG_NAME)
    except CheckpointError:
        return PipelineConfig()


def read_defaults(path: Path) -> tuple[Settings, bool]:
    """The checkpoint's default settings and whether it has an SR stage (`read_config`)."""
    config = read_config(path)
    return config.defaults, config.sr is not None


class SharedPipeline:
    """The pipeline, loaded on first use, once, and shared by every session and thread."""

    def __init__(self, path: Path, device: str = "auto", dtype: str = "auto"):
        self.path, self.device, self.dtype = Path(path), device, dtype
        self._pipe: ImagenPipeline | None = None
        self._lock = threading.Lock()

    def get(self) -> ImagenPipeline:
        if self._pipe is None:
            with self._lock:  # ten first requests at once must not load ten copies
                if self._pipe is None:
                    self._pipe = self._load()
        return self._pipe

    def _load(self) -> ImagenPipeline:
        from ..pipeline import ImagenPipeline
        if not self.path.exists():
            # Not cached: weights installed later are picked up without a restart.
            raise user_error(no_weights_message(self.path), title="No trained weights")
        try:
            return ImagenPipeline.from_pretrained(self.path, device=self.device, dtype=self.dtype)
        except CheckpointError as e:
            # The page says so on every load too: one line per request, no traceback, is enough.
            raise user_error(f"The weights at {self.path} could not be loaded: {e}", title="Broken checkpoint") from e
