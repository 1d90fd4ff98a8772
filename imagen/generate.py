"""Generate images from captions with a trained pipeline.

    python -m imagen.generate "red apple, twemoji style" "cat face" --out outputs/demo
    python -m imagen.generate --captions captions.txt --checkpoint checkpoints/emoji --seed 7

Writes OUT/captions.txt (line i is the caption of image i), OUT/64/0000.png ... and
OUT/256/0000.png ...; each image is saved as soon as its stage finishes, so an interrupted run
keeps what it made. Image i uses seed + i, so any image can be made again on its own.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .samplers import SAMPLERS

DEFAULT_CHECKPOINT = Path("checkpoints/emoji")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m imagen.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("prompts", nargs="*", help="captions, one image each")
    p.add_argument("--captions", type=Path, help="a text file with one caption per line")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i (default: 0)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance weight (checkpoint default)")
    p.add_argument("--steps", type=int, help="denoising steps of the 64 px stage (checkpoint default)")
    p.add_argument("--sr-steps", type=int, help="denoising steps of the 256 px stage (checkpoint default)")
    p.add_argument("--sampler", choices=SAMPLERS, help="checkpoint default")
    p.add_argument("--no-sr", action="store_true", help="stop at 64 px")
    p.add_argument("--batch-size", type=int, default=4, help="images denoised together (default: 4)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    return p.parse_args(argv)


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompts)
    if args.captions is not None:
        if not args.captions.is_file():
            raise ValueError(f"captions file {args.captions} not found")
        prompts += [line.strip() for line in args.captions.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give at least one caption, e.g. python -m imagen.generate \"red apple\"")
    for i, p in enumerate(prompts):
        if not p.strip():
            raise ValueError(f"caption {i} is empty")
    return prompts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        prompts = read_prompts(args)
        if args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if not args.checkpoint.exists():
            hint = (" No trained weights are installed there: train them with python -m imagen.train "
                    "and python -m imagen.export (see README)") if args.checkpoint == DEFAULT_CHECKPOINT else ""
            raise ValueError(f"checkpoint {args.checkpoint} not found.{hint}")
        from tqdm import tqdm

        from .pipeline import ImagenPipeline, PromptTruncatedWarning
        pipe = ImagenPipeline.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype)
        settings = pipe.settings(guidance_scale=args.guidance_scale, steps=args.steps, sr_steps=args.sr_steps,
                                 sampler=args.sampler, sr=False if args.no_sr else None)
    except ValueError as e:  # CheckpointError is a ValueError too
        print(f"error: {e}", file=sys.stderr)
        return 2

    from .images import to_pil
    sizes = ["64", "256"] if settings.sr else ["64"]
    for size in sizes:
        (args.out / size).mkdir(parents=True, exist_ok=True)
    (args.out / "captions.txt").write_text("".join(p.replace("\n", " ") + "\n" for p in prompts), encoding="utf-8")
    for i, cut in enumerate(pipe.truncated(prompts)):
        if cut:
            print(f"note: caption {i} is longer than {pipe.text_encoder.max_length} tokens; its end is ignored",
                  file=sys.stderr)
    per_batch = settings.steps + (settings.sr_steps if settings.sr else 0)
    bar = tqdm(total=per_batch * -(-len(prompts) // args.batch_size), unit="step", desc="generating")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)  # reported above, once per caption
        for start in range(0, len(prompts), args.batch_size):
            batch = prompts[start:start + args.batch_size]
            for step in pipe.generate(batch, seed=args.seed + start, **_overrides(settings)):
                bar.update(1)
                bar.set_postfix(stage=step.stage, images=f"{start + len(batch)}/{len(prompts)}")
                if step.is_last:
                    size = "64" if step.stage == "base" else "256"
                    for j, image in enumerate(to_pil(step.x_prev)):
                        image.save(args.out / size / f"{start + j:04d}.png")
    bar.close()
    print(f"wrote {len(prompts)} image(s) to {args.out}/" + " and ".join(f"{s}/" for s in sizes)
          + f", captions in {args.out / 'captions.txt'}")
    return 0


def _overrides(settings: object) -> dict:
    from dataclasses import asdict
    return asdict(settings)


if __name__ == "__main__":
    sys.exit(main())
