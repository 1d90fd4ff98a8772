"""Generate images from captions with a trained pipeline.

    python -m imagen.generate "red apple, twemoji style" "cat face" --out outputs/demo
    python -m imagen.generate --captions captions.txt --checkpoint checkpoints/emoji --seed 7
    python -m imagen.generate --gan "red apple" --out outputs/gan   # the GAN beside diffusion: 64 px only

Writes OUT/64/0000.png ..., OUT/256/0000.png ... and OUT/captions.txt (line i is the caption of
image i); with --attention also OUT/attention/0000_<word>.png, where the base stage looked for each
word of the caption (left: at the last step; right: summed over all steps), over the 64 px image.
Each image is saved as soon as its stage finishes, and a caption is added to
captions.txt only once its 64 px image is on disk, so an interrupted run (Ctrl-C) keeps what it
made, and says how far it got. Image i uses seed + i, so any image can be made again on its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .config import DEFAULT_CHECKPOINT
from .device import DTYPE_CHOICES, DTYPE_HELP
from .files import atomic_write, atomic_write_text
from .samplers import SAMPLERS

if TYPE_CHECKING:  # torch and diffusers load only once the arguments are known to be good
    import torch

    from .config import Settings
    from .gan.sampler import GanSampler
    from .pipeline import ImagenPipeline
    from .samplers import Step



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m imagen.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("prompts", nargs="*", help="captions, one image each")
    p.add_argument("--captions", type=Path, help="a text file with one caption per line")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i (default: 0)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance weight (checkpoint default)")
    p.add_argument("--guidance-min-t", type=int,
                   help="guide only the steps at timestep t >= this; 0 guides every step (checkpoint default)")
    p.add_argument("--steps", type=int, help="denoising steps of the 64 px stage (checkpoint default)")
    p.add_argument("--sr-steps", type=int, help="denoising steps of the 256 px stage (checkpoint default)")
    p.add_argument("--sampler", choices=SAMPLERS, help="checkpoint default")
    p.add_argument("--threshold", type=float,
                   help="dynamic-thresholding percentile of abs(x0), in (0, 1] (checkpoint default)")
    p.add_argument("--no-sr", action="store_true", help="stop at 64 px")
    p.add_argument("--gan", action="store_true",
                   help="draw with the checkpoint's GAN (CHECKPOINT/gan/) in one forward pass: 64 px only")
    p.add_argument("--attention", action="store_true",
                   help="also write each word's cross-attention map to OUT/attention/ (base stage)")
    p.add_argument("--batch-size", type=int, default=4, help="images denoised together (default: 4)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    return p.parse_args(argv)


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompts)
    if args.captions is not None:
        if not args.captions.is_file():
            raise ValueError(f"captions file {args.captions} not found")
        try:
            text = args.captions.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"captions file {args.captions} is not UTF-8 text (byte {e.object[e.start]:#04x} at "
                             f"offset {e.start}): save it as UTF-8, e.g. iconv -f latin1 -t utf-8 "
                             f"{args.captions} > captions-utf8.txt") from e
        except OSError as e:
            raise ValueError(f"captions file {args.captions} could not be read: {e}") from e
        prompts += [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give at least one caption, e.g. python -m imagen.generate \"red apple\"")
    for i, p in enumerate(prompts):
        if not p.strip():
            raise ValueError(f"caption {i} is empty")
    return prompts


def check_writable(out: Path) -> None:
    """Fail now, not after the model has loaded, when the output folder cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ValueError(f"--out {out} cannot be written to: {e.strerror or e}") from e


def save_image(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_captions(out: Path, prompts: list[str]) -> None:
    """captions.txt for the images made so far: line i is the caption of image i."""
    text = "".join(p.replace("\n", " ") + "\n" for p in prompts)
    atomic_write_text(out / "captions.txt", text)


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
        if args.gan:
            diffusion_only = [flag for flag, value in (("--guidance-scale", args.guidance_scale),
                                                       ("--guidance-min-t", args.guidance_min_t),
                                                       ("--steps", args.steps), ("--sr-steps", args.sr_steps),
                                                       ("--sampler", args.sampler), ("--threshold", args.threshold),
                                                       ("--attention", args.attention or None)) if value is not None]
            if diffusion_only:
                raise ValueError(f"{', '.join(diffusion_only)} set diffusion's sampling; the GAN draws in one "
                                 "forward pass: drop them, or drop --gan")
        check_writable(args.out)
        if args.gan:
            from .gan.sampler import GanSampler
            drawing = write_gan_images(GanSampler.from_pretrained(args.checkpoint, device=args.device), prompts, args)
            sizes = ["64"]
        else:
            from .pipeline import ImagenPipeline
            pipe = ImagenPipeline.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype)
            settings = pipe.settings(guidance_scale=args.guidance_scale, guidance_min_t=args.guidance_min_t,
                                     steps=args.steps, sr_steps=args.sr_steps, sampler=args.sampler,
                                     threshold=args.threshold, sr=False if args.no_sr else None)
            drawing = write_images(pipe, settings, prompts, args)
            sizes = ["64", "256"] if settings.sr else ["64"]
    except ValueError as e:  # CheckpointError is a ValueError too
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before any image was made", file=sys.stderr)
        return 130

    made = 0  # images whose 64 px file is on disk, and so listed in captions.txt
    try:
        for count in drawing:
            made = count
    except KeyboardInterrupt:
        # captions.txt is the truth: the signal may land after it was written and before the count came back.
        listed = args.out / "captions.txt"
        made = max(made, len(listed.read_text(encoding="utf-8").splitlines()) if listed.is_file() else 0)
        print(f"\ninterrupted: {made} of {len(prompts)} image(s) are in {args.out}/ and listed in captions.txt. "
              f"Image i uses seed + i: make the rest with their captions and --seed {args.seed + made}.",
              file=sys.stderr)
        return 130
    print(f"wrote {len(prompts)} image(s) to {args.out}/" + " and ".join(f"{s}/" for s in sizes)
          + f", captions in {args.out / 'captions.txt'}")
    return 0


def write_images(pipe: ImagenPipeline, settings: Settings, prompts: list[str],
                 args: argparse.Namespace) -> Iterator[int]:
    """Draw every caption in batches, saving each image when its stage ends. Yields, after each
    batch's 64 px images, how many images captions.txt lists."""
    from tqdm import tqdm

    from .images import to_pil
    from .pipeline import PromptTruncatedWarning
    sizes = ["64", "256"] if settings.sr else ["64"]
    for size in sizes:
        (args.out / size).mkdir(parents=True, exist_ok=True)
    save_captions(args.out, [])  # a file from an earlier run would list images this run has not made
    for i, cut in enumerate(pipe.truncated(prompts)):
        if cut:
            print(f"note: caption {i} is longer than {pipe.text_encoder.max_length} tokens; its end is ignored",
                  file=sys.stderr)
    per_batch = settings.steps + (settings.sr_steps if settings.sr else 0)
    bar = tqdm(total=per_batch * -(-len(prompts) // args.batch_size), unit="step", desc="generating")
    with warnings.catch_warnings(), bar:
        warnings.simplefilter("ignore", PromptTruncatedWarning)  # reported above, once per caption
        for start in range(0, len(prompts), args.batch_size):
            batch = prompts[start:start + args.batch_size]
            summed = None  # (B, L, 64, 64) attention summed over the base stage's steps
            for step in pipe.generate(batch, seed=args.seed + start, settings=settings, attention=args.attention):
                bar.update(1)
                bar.set_postfix(stage=step.stage, images=f"{start + len(batch)}/{len(prompts)}")
                if step.attention is not None:
                    summed = step.attention if summed is None else summed + step.attention
                if step.is_last:
                    size = "64" if step.stage == "base" else "256"
                    for j, image in enumerate(to_pil(step.x_prev)):
                        save_image(image, args.out / size / f"{start + j:04d}.png")
                    if step.attention is not None:
                        save_attention(pipe, batch, start, step, summed, args.out / "attention")
                    if step.stage == "base":  # the images first, then the captions that name them
                        save_captions(args.out, prompts[:start + len(batch)])
                        yield start + len(batch)


def write_gan_images(gan: GanSampler, prompts: list[str], args: argparse.Namespace) -> Iterator[int]:
    """The GAN's drawings, batch by batch, saved as write_images saves the 64 px stage's: the images
    first, then captions.txt, which lists them. Yields how many images captions.txt lists."""
    from tqdm import tqdm
    (args.out / "64").mkdir(parents=True, exist_ok=True)
    save_captions(args.out, [])
    for i, cut in enumerate(gan.text_encoder.too_long(prompts)):
        if cut:
            print(f"note: caption {i} is longer than {gan.text_encoder.max_length} tokens; its end is ignored",
                  file=sys.stderr)
    for start in tqdm(range(0, len(prompts), args.batch_size), unit="batch", desc="drawing (GAN)"):
        batch = prompts[start:start + args.batch_size]
        for j, image in enumerate(gan(batch, seed=args.seed + start)):
            save_image(image, args.out / "64" / f"{start + j:04d}.png")
        save_captions(args.out, prompts[:start + len(batch)])
        yield start + len(batch)


def save_attention(pipe: ImagenPipeline, prompts: list[str], start: int, last: Step, summed: torch.Tensor,
                   folder: Path) -> None:
    """OUT/attention/0000_<word>.png for each word of each caption: the map at the last step and the
    map summed over all steps, each over the 64 px image, side by side."""
    from .images import heat_overlay
    from .instruments import word_maps, words
    folder.mkdir(parents=True, exist_ok=True)
    for j, prompt in enumerate(prompts):
        spans = words(pipe.text_encoder, prompt)
        final, total = word_maps(last.attention[j], spans), word_maps(summed[j], spans)
        for word in final:
            sheet = Image.new("RGB", (128, 64), "white")
            sheet.paste(heat_overlay(last.x_prev[j], final[word]), (0, 0))
            sheet.paste(heat_overlay(last.x_prev[j], total[word]), (64, 0))
            name = "".join(c if c.isalnum() else "_" for c in word).strip("_") or "word"
            save_image(sheet, folder / f"{start + j:04d}_{name}.png")


if __name__ == "__main__":
    sys.exit(main())
