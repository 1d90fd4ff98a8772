"""Training throughput (samples/s) of each U-Net preset, through the real training loop.

    python benchmarks/train_throughput.py                      # CPU presets, bf16 and fp32
    python benchmarks/train_throughput.py --presets base:cpu sr:cpu --precision bf16 --steps 20

Runs the real trainer (`imagen.train.make_trainer`) on a small synthetic dataset in a temporary folder: 2K steps, and
reports the second K (the first pays for warm-up). Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagen.train import make_trainer  # noqa: E402
from imagen.training.config import TrainConfig  # noqa: E402


def synthetic_folder(folder: Path, n: int = 64) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": f"picture number {i}"}))
    (folder / "metadata.jsonl").write_text("\n".join(rows))
    return folder


def throughput(tmp: Path, data: Path, stage: str, preset: str, precision: str, batch: int, steps: int) -> float:
    run = tmp / f"run-{stage}-{preset}-{precision}"
    cfg = TrainConfig(stage=stage, data=str(data), run=str(run), preset=preset, batch_size=batch,
                      steps=2 * steps, log_every=steps, save_every=10**9, sample_every=10**9,
                      mixed_precision=precision, cache_dir=str(tmp / "cache"), warmup_steps=1)
    make_trainer(cfg.validate()).train()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return records[-1]["samples_per_s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["base:cpu", "base:cpu-large", "sr:cpu"],
                   help="stage:preset pairs (default: the CPU presets; gan:cpu is the GAN, float32 only)")
    p.add_argument("--precision", nargs="+", default=["bf16", "no"], help="bf16 and/or no (fp32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed steps (after as many warm-up steps)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = synthetic_folder(tmp / "data", n=max(64, args.batch_size))
        for pair in args.presets:
            stage, preset = pair.split(":")
            for precision in args.precision:
                # a fresh process each: Accelerate fixes the mixed precision once per process
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                    rate = pool.submit(throughput, tmp, data, stage, preset, precision, args.batch_size,
                                       args.steps).result()
                print(json.dumps({"stage": stage, "preset": preset, "precision": precision,
                                  "batch_size": args.batch_size, "samples_per_s": round(rate, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
