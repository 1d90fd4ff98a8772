"""Training checkpoints that survive a kill at any moment, stored without pickle.

    run/checkpoints/step-0001000/{model,ema,optimizer}.safetensors + state.json
    run/checkpoints/latest                       names the newest complete checkpoint

A checkpoint is written into a temporary folder, flushed to disk, and renamed into place; only
then does `latest` move (itself replaced atomically). A process killed mid-save leaves a
`.tmp` folder that nothing reads and the next save removes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..files import atomic_write_text

KEEP = 2  # complete checkpoints kept; older ones are deleted after a successful save
LISTINGS = 20  # times load_latest lists the folder again when a live run prunes what it reads
FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "state.json")  # a complete checkpoint


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state_dict into flat tensors (for safetensors) and plain JSON."""
    sd = optimizer.state_dict()
    tensors, meta_state = {}, {}
    for pid, state in sd["state"].items():
        meta_state[str(pid)] = {}
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta_state[str(pid)][k] = v
    return tensors, {"param_groups": sd["param_groups"], "state": meta_state}


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(pid): dict(extra) for pid, extra in meta["state"].items()}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, ema_state: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, state: dict) -> Path:
    """Write checkpoint `step` atomically and point `latest` at it."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.{os.getpid()}.tmp"
    tmp.mkdir()
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    save_file({k: v.detach().cpu().contiguous() for k, v in ema_state.items()}, tmp / "ema.safetensors")
    save_file(opt_tensors, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": opt_meta}))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():
        _discard(final)
    tmp.rename(final)
    _fsync_dir(root)
    atomic_write_text(root / "latest", final.name + "\n", durable=True)
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        _discard(old)
    return final


def _discard(path: Path) -> None:
    """Rename a checkpoint out of the step-* names (atomic), then delete it: a kill in the middle
    of the delete leaves a .tmp folder that the next save clears, never a half-deleted checkpoint."""
    trash = path.with_name(f".{path.name}.{os.getpid()}.trash.tmp")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, newest first (the one `latest` names leads)."""
    root = run_dir / "checkpoints"
    found = sorted((p for p in root.glob("step-*") if all((p / f).is_file() for f in FILES)), reverse=True)
    latest = root / "latest"
    if latest.is_file():
        named = root / latest.read_text().strip()
        if named in found:
            found.remove(named)
            found.insert(0, named)
    return found


def load_checkpoint(path: Path) -> dict:
    """Read one checkpoint folder; raises if any part is missing or damaged."""
    state = json.loads((path / "state.json").read_text())
    return {
        "state": state,
        "model": load_file(path / "model.safetensors"),
        "ema": load_file(path / "ema.safetensors"),
        "optimizer": optimizer_state(load_file(path / "optimizer.safetensors"), state.pop("optimizer")),
    }


def load_latest(run_dir: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads completely, or None if the run has none.

    Safe to call on a run that is still training: a checkpoint the trainer prunes while it is being
    read (only the newest KEEP are kept) vanishes mid-read, and the folder is then listed again."""
    for _ in range(LISTINGS):
        errors, vanished = [], False
        for path in complete_checkpoints(run_dir):
            try:
                return path, load_checkpoint(path)
            except Exception as e:
                if not path.exists():  # pruned by a live run: newer ones exist, so look again
                    vanished = True
                    break
                errors.append(f"{path.name}: {type(e).__name__}: {e}")  # damaged: fall back to the one before
        if not vanished:
            break
    if errors or vanished:
        reasons = errors or ["each was pruned by the live run while being read"]
        raise RuntimeError("no checkpoint in this run could be loaded:\n  " + "\n  ".join(reasons))
    return None
