"""Pack what a bare GPU machine needs to train the cascade on the emoji set, in a few tens of MB.

    python -m ops.gpu_pack                         # writes .gpu-pack/ (ignored by git)

A lent GPU machine (torch and transformers installed, nothing else, no network, at most 64 MiB
of files taken along, commands of at most 10 minutes, files of at most 16 MiB brought back)
then trains in chunks, each one command run from the repository root:

    bash .gpu-pack/train_chunk.sh base 480 --preset cpu-large --batch-size 256 --lr 1e-3 --steps 20000 \
        --balance 0.75 --timestep-shift 2
    bash .gpu-pack/train_chunk.sh base 480          # the next chunk resumes the run
    bash .gpu-pack/train_chunk.sh sr 480 --batch-size 256 --steps 20000

Each chunk resumes runs/gpu-<stage> when the machine still holds it, trains until its seconds
are up (SIGTERM saves a checkpoint), and exports the EMA weights in fp16 files of at most 15 MB
to $OUT/<stage>. What the pack holds:

- wheels/: the packages the machine lacks (diffusers; resvg-py renders the SVGs);
- text_encoder/: all-MiniLM-L6-v2 with its vocabulary pruned to the tokens of the dataset's
  captions and the sample prompts, in fp16 (23 MB instead of 88 MB). It tokenises those
  captions exactly as the full model does (WordPiece picks the longest piece it knows, and every
  piece it picked is kept) and its embeddings differ by rounding only;
- emoji/: the captions and the SVGs actually used, 2 MB as .tar.xz (see data/emoji.py);
- env.sh: what both scripts below source (the wheels, installed once; the pack's paths);
- train_chunk.sh: the chunk above;
- session.sh (ops/gpu_session.sh): a whole lent session in one command of at most 10 minutes,
  the one the shipped weights' GPU fine-tune came from: three warm starts from checkpoints/emoji
  side by side on the one GPU (the base stage, the base stage with self-conditioning, the SR
  stage), each sized by `--time-budget-s` to end before TOTAL seconds are up, then their EMA
  weights as one fp16 .safetensors each plus meta.tar.gz (configs, logs, sample grids) in $OUT:

    bash .gpu-pack/session.sh 545
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from imagen.data.caption_variety import variety_words
from imagen.data.emoji import STYLES, parse_styles, write_pack
from imagen.text_encoder import DEFAULT_TEXT_ENCODER, resolve_text_encoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".gpu-pack"
LIMIT_MB = 64 * 2**20 / 1e6  # what travels to the machine: the repository's files and the pack
# The GPU machine runs CPython 3.12 on x86-64 Linux: wheels are fetched for it, not for this one.
WHEEL_PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
                  "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                  "--platform", "manylinux2014_x86_64"]
WHEELS = ("diffusers", "resvg-py")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Sourced by the pack's scripts: the wheels the machine lacks (installed once per machine), and the
# pack's own text encoder and emoji in place of the packages that carry them.
ENV_SCRIPT = r"""pack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
site=/tmp/imagen-site
if [ ! -f "$site/.complete" ] && compgen -G "$pack/wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$pack"/wheels/*.whl || return 1
  touch "$site/.complete"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export IMAGEN_MINILM_PATH="$pack/text_encoder" IMAGEN_EMOJI_PACK="$pack/emoji"
"""

CHUNK_SCRIPT = r"""#!/usr/bin/env bash
# One training chunk on a GPU machine, run from the repository root:
#   bash .gpu-pack/train_chunk.sh STAGE SECONDS [python -m imagen.train flags for a new run]
# Resumes runs/gpu-STAGE if this machine still holds it, trains for SECONDS (SIGTERM saves a
# checkpoint), then writes the EMA weights to $OUT/STAGE in fp16 files of at most 15 MB.
set -euo pipefail
stage=$1; seconds=$2; shift 2
. "$(dirname "$0")/env.sh"
run=runs/gpu-$stage
if [ -f "$run/config.json" ]; then args=(--run "$run" --resume); else args=(--run "$run" --stage "$stage" "$@"); fi
status=0
timeout --signal=TERM --kill-after=90 "$seconds" python3 -m imagen.train "${args[@]}" || status=$?
[ "$status" = 0 ] || [ "$status" = 124 ] || exit "$status"   # 124: the time was up, a checkpoint was saved
tail -n 3 "$run/log.jsonl"
pair=()  # an SR stage is exported beside a base: this machine's base run, else the shipped one
if [ "$stage" = sr ]; then
  if [ -f runs/gpu-base/config.json ]; then pair=(--run runs/gpu-base); else pair=(--base-from checkpoints/emoji); fi
fi
python3 -m imagen.export --run "$run" "${pair[@]}" --out "${OUT:-exports}/$stage" --max-shard-mb 15
"""

SESSION_SCRIPT = Path(__file__).with_name("gpu_session.sh")


def prune_text_encoder(captions: list[str], out: Path, source: str = DEFAULT_TEXT_ENCODER) -> Path:
    """Write the BERT-style text encoder `source` to `out` in fp16, keeping only the vocabulary
    rows that `captions` tokenise to (and the special tokens)."""
    from transformers import AutoTokenizer
    src = Path(resolve_text_encoder(source))
    tokenizer = AutoTokenizer.from_pretrained(src)
    vocab = (src / "vocab.txt").read_text(encoding="utf-8").splitlines()
    used = {i for ids in tokenizer(list(captions) + [""])["input_ids"] for i in ids}
    keep = sorted(used | set(tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))))
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("".join(vocab[i] + "\n" for i in keep), encoding="utf-8")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(src / name, out / name)
    config = json.loads((src / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "vocab_size": len(keep)}, indent=2))
    state = load_file(src / "model.safetensors")
    key = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[key] = state[key][torch.tensor(keep)]
    save_file({k: v.half().contiguous() for k, v in state.items()}, out / "model.safetensors")
    return out


def download_wheels(out: Path) -> list[Path]:
    """The wheels of WHEELS at the versions requirements.txt pins, for the GPU machine's Python."""
    pins = {line.split("==")[0].strip().lower(): line.strip() for line in
            (ROOT / "requirements.txt").read_text().splitlines() if "==" in line and not line.startswith("#")}
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *WHEEL_PLATFORM, "-d", str(out),
           *(pins[name] for name in WHEELS)]
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError("pip could not download the wheels (is PyPI reachable?): " + " ".join(cmd))
    return sorted(out.glob("*.whl"))


def sample_prompts() -> list[str]:
    """The prompts the training configs draw sample grids from: they must tokenise too."""
    prompts: list[str] = []
    for config in sorted((ROOT / "configs").glob("*.json")):
        prompts += json.loads(config.read_text()).get("sample_prompts", [])
    return prompts


def tracked_mb() -> float:
    """Size of the repository's tracked files, which travel with the pack."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / f).stat().st_size for f in files.decode().split("\0") if f and (ROOT / f).is_file()) / 1e6


def build_pack(out: Path, wheels: bool = True, max_items: int | None = None,
               styles: tuple[str, ...] = STYLES) -> dict:
    """Write the pack to `out` (replacing it) and return its sizes in MB. `styles`: the emoji
    styles it carries (the runs there train on them as `--data emoji`)."""
    if out.exists():
        shutil.rmtree(out)
    emoji_dir = write_pack(out / "emoji", max_items, styles)
    items = json.loads((emoji_dir / "items.json").read_text())
    captions = [c for _, variants in items["items"] for c in variants]
    # --caption-variety adds words of its own: the phrasings, colour words and the emoji's aliases
    extra = variety_words([a for aliases in items.get("aliases", {}).values() for a in aliases])
    prune_text_encoder(captions + sample_prompts() + extra, out / "text_encoder")
    if wheels:
        download_wheels(out / "wheels")
    (out / "env.sh").write_text(ENV_SCRIPT)
    (out / "train_chunk.sh").write_text(CHUNK_SCRIPT)
    shutil.copy2(SESSION_SCRIPT, out / "session.sh")
    for script in ("train_chunk.sh", "session.sh"):
        (out / script).chmod(0o755)
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1e6
             for p in sorted(out.iterdir()) if p.is_dir()}
    sizes["pack"] = sum(sizes.values())
    sizes["repository"] = tracked_mb()
    sizes["total"] = sizes["pack"] + sizes["repository"]
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.gpu_pack", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT.name}/")
    p.add_argument("--no-wheels", action="store_true", help="skip downloading the wheels (no network)")
    p.add_argument("--max-items", type=int, help="pack only the first N emoji (smoke tests)")
    p.add_argument("--data", default="emoji", help="the emoji styles to carry, e.g. emoji:twemoji,openmoji,noto,fluent "
                                                   "(default: emoji, the built-in two)")
    args = p.parse_args(argv)
    try:
        sizes = build_pack(args.out, wheels=not args.no_wheels, max_items=args.max_items,
                           styles=parse_styles(args.data))
    except (RuntimeError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("  ".join(f"{k} {v:.1f} MB" for k, v in sizes.items()))
    if sizes["total"] > LIMIT_MB:
        print(f"error: {sizes['total']:.1f} MB would travel, over the {LIMIT_MB:.1f} MB (64 MiB) limit",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out}: carry it with the repository; see `python -m ops.gpu_pack --help`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
