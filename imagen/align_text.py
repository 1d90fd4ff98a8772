"""Teach a checkpoint's base U-Net to read everyday phrasings through its pooled text path
(imagen/training/pooled_text.py), and write the result as a new pipeline checkpoint.

    python -m imagen.align_text --checkpoint checkpoints/emoji --run runs/align --out runs/align-ck
    python -m imagen.align_text --checkpoint checkpoints/emoji --run runs/align --out runs/align-ck  # again: resumes

Only the base U-Net's `add_embedding` changes; the rest of the checkpoint is copied as it is. The
run folder keeps a checkpoint every --save-every steps, so a killed run resumes where it saved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import default_cache_dir, load_dataset
from .data.caption_variety import split_caption
from .data.emoji import emoji_aliases
from .data.phrasing import PHRASING_SETS, phrasing_set
from .files import atomic_write_text
from .pipeline import ImagenPipeline
from .training.checkpointing import load_latest, save_checkpoint
from .training.pooled_text import AlignShares, PooledTextAligner, caption_pair


def align(checkpoint: Path, run: Path, out: Path, steps: int = 1000, lr: float = 3e-4, batch_size: int = 64,
          phrasings: str = "everyday", data: str = "emoji", cache_dir: Path | None = None, save_every: int = 100,
          seed: int = 0, composed: float = 0.0, progress: bool = True) -> list[float]:
    """Train the pooled text path up to `steps` (resuming from `run`), write `out`; returns the losses run here.
    The learning rate is constant, so a run taken from 500 to 1,000 steps is the run of 1,000."""
    frames = phrasing_set(phrasings)
    # what a resumed run must share (not the step count: a finished run can be taken further)
    settings = {"checkpoint": str(checkpoint), "lr": lr, "batch_size": batch_size, "phrasings": phrasings,
                "data": data, "seed": seed, "composed": composed}
    shares = AlignShares(composed=composed)
    pipe = ImagenPipeline.from_pretrained(checkpoint, device="cpu", dtype="float32")
    ds = load_dataset(data, cache_dir or default_cache_dir())
    names, styles = zip(*(split_caption(c) for c in ds.captions))
    aliases = emoji_aliases() if data.split(":")[0] == "emoji" else {}
    aligner = PooledTextAligner(pipe.base_unet.add_embedding, pipe.text_encoder, lr)
    start = 0
    run.mkdir(parents=True, exist_ok=True)
    saved = load_latest(run)
    if saved is not None:
        path, ck = saved
        if ck["state"]["settings"] != settings:
            raise ValueError(f"{run} holds a run with other settings ({ck['state']['settings']}); "
                             "give another --run to start afresh")
        aligner.student.load_state_dict(ck["model"])
        aligner.optimizer.load_state_dict(ck["optimizer"])
        start = ck["state"]["step"]
        print(f"resumed {run} at step {start} ({path.name})")
    atomic_write_text(run / "settings.json", json.dumps(settings, indent=2) + "\n")
    losses: list[float] = []
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="aligning", unit="step", disable=not progress)
    for step in bar:
        rng = np.random.default_rng([seed, step])  # each step's captions from its own seed: resumes exactly
        picks = rng.integers(len(names), size=batch_size)
        pairs = [caption_pair(names[i], styles[i], rng, frames, tuple(aliases.get(names[i], ())), shares)
                 for i in picks]
        losses.append(aligner.step([p[0] for p in pairs], [p[1] for p in pairs]))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            state = aligner.student.state_dict()
            save_checkpoint(run, step + 1, aligner.student, state, aligner.optimizer, {"settings": settings})
    pipe.base_unet.add_embedding.load_state_dict(aligner.student.state_dict())
    pipe.save_pretrained(out, half=True)
    return losses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagen.align_text", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="the pipeline checkpoint to start from")
    p.add_argument("--run", type=Path, required=True, help="this run's checkpoints (resumed if any)")
    p.add_argument("--out", type=Path, required=True, help="the pipeline checkpoint to write")
    p.add_argument("--steps", type=int, default=1000, help="default: 1000 (about 15 minutes on a 2-core CPU)")
    p.add_argument("--lr", type=float, default=3e-4, help="default: 3e-4")
    p.add_argument("--batch-size", type=int, default=64, help="caption pairs per step (default: 64)")
    p.add_argument("--phrasings", choices=tuple(PHRASING_SETS), default="everyday",
                   help="the training frames (never the evaluation's held-out ones; default: everyday)")
    p.add_argument("--composed", type=float, default=0.0,
                   help="share of framed captions made of two frames, the words before x from one and after it "
                        "from another (default: 0)")
    p.add_argument("--data", default="emoji", help="the dataset whose captions are framed (default: emoji)")
    p.add_argument("--cache-dir", type=Path, help="dataset cache (default: $IMAGEN_CACHE or cache)")
    p.add_argument("--save-every", type=int, default=100, help="steps between run checkpoints (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.steps, args.batch_size, args.save_every) < 1 or args.lr <= 0 or not 0 <= args.composed <= 1:
        print("error: --steps, --batch-size and --save-every must be at least 1, --lr positive, --composed in [0, 1]",
              file=sys.stderr)
        return 2
    if args.out.resolve() == args.checkpoint.resolve():
        print("error: --out must be another folder than --checkpoint (compare before replacing)", file=sys.stderr)
        return 2
    try:
        losses = align(args.checkpoint, args.run, args.out, args.steps, args.lr, args.batch_size, args.phrasings,
                       args.data, args.cache_dir, args.save_every, args.seed, args.composed)
    except (ValueError, FileNotFoundError) as e:  # a CheckpointError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    if losses:
        print(f"loss {np.mean(losses[:50]):.4f} over the first 50 steps run here, {np.mean(losses[-50:]):.4f} "
              "over the last 50")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
