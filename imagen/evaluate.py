"""Score generated images against their captions, with nothing downloaded.

    python -m imagen.evaluate --checkpoint checkpoints/emoji --data emoji --num-captions 200 \\
        --guidance 1 2 4 6 8 --out eval/emoji
    python -m imagen.evaluate --steps 5 10 15 25 50 --sampler dpm++ ddim   # quality per step
    python -m imagen.evaluate --sr --sr-guidance 1 4 --sr-noise-level 0 50 100   # also score the 256 px stage
    python -m imagen.evaluate --baselines-only                              # ceiling and floor; no checkpoint
    python -m imagen.evaluate --mode phrasing      # concepts in phrasings training never used ("a picture of a ...")
    python -m imagen.evaluate --mode colour        # colours on objects training never showed in them
    python -m imagen.evaluate --mode grey          # the same on grey-filled objects ("pink elephant")

R-precision: the share of generated images whose caption outscores 99 distractor captions under a
small image encoder trained on the dataset's real images (AttnGAN's metric), with two pools of
distractors: 99 random captions, and the 99 captions whose real images are nearest in mean ink colour
and ink coverage (colour-matched: only shape can decide). Fréchet distance: between the encoder's
features of the generated images and of its training images. Every number is read against the real
images of the same captions (the ceiling) and two floors: noise, and colour blobs (a disc of each
real image's mean ink colour over its ink area: what colour alone scores). There is one caption per
concept (skin-tone variants count once), drawn from a random order of the images, so a concept with
many variants (the people emoji) is drawn more often than one with a single image (most objects,
animals, flags); both R-precisions are also given over the single-image concepts alone. With
--sr, the SR stage at its defaults is also run on the real 64 px images: its own ceiling, which
the scoring path (256 px downsampled to 64) does not lower. Each sweep varies one setting around
the checkpoint's defaults; image i uses seed + i at every setting.

--mode phrasing and --mode colour ask for concepts the way people write instead (evaluation/asked.py):
by name and in held-out phrasings, each image scored against the concept's name; and held-out pairs of
a colour word and a concept of another colour, scored by whether the drawing's dominant hue is the
asked colour and by a colour-blind judge (grey input) that only shape can satisfy; --mode grey asks
the same of grey-filled concepts. They write OUT/results.json and OUT/<mode>_samples.png.

Writes OUT/results.json, OUT/guidance_sweep.png, OUT/steps_sweep.png (with several step counts),
OUT/samples.png (top row: the real images) and, with --sr, OUT/sr_samples.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .config import DEFAULT_CHECKPOINT
from .data import PreparedDataset, load_dataset
from .device import DTYPE_CHOICES, DTYPE_HELP, resolve_device
from .evaluation import sweep
from .evaluation.asked import MODES, evaluate_colour, evaluate_phrasing, format_asked
from .evaluation.image_encoder import holdout_split, load_or_train
from .evaluation.metrics import sharpness
from .evaluation.plots import plot_sweep, sample_grid, sr_grid
from .evaluation.scorer import Scorer, evaluation_index, noise_images
from .images import from_uint8, to_pil
from .pipeline import ImagenPipeline
from .samplers import SAMPLERS
from .text_encoder import TextEncoder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m imagen.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--mode", choices=MODES, default="captions",
                   help="captions (the dataset's captions, default), phrasing (held-out phrasings), colour "
                        "(held-out colour-concept pairs) or grey (held-out colours on grey-filled concepts)")
    p.add_argument("--style", help="with --mode phrasing, colour or grey: add ', STYLE style' to every prompt "
                                   "(e.g. openmoji; default: none, as a person types)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--data", default="emoji", help="emoji, a folder of captioned images or hf:NAME (default: emoji)")
    p.add_argument("--cache-dir", type=Path, help="dataset cache (default: $IMAGEN_CACHE or cache)")
    p.add_argument("--out", type=Path, help="output folder (default: eval/<data>)")
    p.add_argument("--num-captions", type=int, default=200,
                   help="captions (one image each), concepts (--mode phrasing) or pairs (--mode colour, grey) "
                        "(default: 200)")
    p.add_argument("--guidance", "--guidance-scale", type=float, nargs="+",
                   help="guidance scales to sweep (default: 1 2 4 6 8 and the checkpoint's)")
    p.add_argument("--steps", type=int, nargs="+", help="base-stage step counts to sweep (default: the checkpoint's)")
    p.add_argument("--sampler", nargs="+", choices=SAMPLERS, help="samplers to sweep (default: the checkpoint's)")
    p.add_argument("--threshold", type=float, nargs="+",
                   help="dynamic-thresholding percentiles to sweep, in (0, 1] (default: the checkpoint's)")
    p.add_argument("--guidance-min-t", type=int, nargs="+",
                   help="lowest guided timesteps to sweep; 0 guides every step (default: the checkpoint's)")
    p.add_argument("--sr", action="store_true",
                   help="also score the 256 px stage: downsampled to 64 px, and its sharpness")
    p.add_argument("--sr-steps", type=int, nargs="+",
                   help="SR step counts to sweep, with --sr (default: the checkpoint's)")
    p.add_argument("--sr-guidance", type=float, nargs="+", help="SR guidance scales to sweep, with --sr")
    p.add_argument("--sr-noise-level", type=int, nargs="+",
                   help="SR augmentation noise levels (timesteps) to sweep, with --sr")
    p.add_argument("--sr-consistency", choices=("on", "off"), nargs="+",
                   help="SR low-frequency consistency to sweep, with --sr (default: the checkpoint's)")
    p.add_argument("--baselines-only", action="store_true", help="score only the real images and noise")
    p.add_argument("--gan", action="store_true",
                   help="also score the checkpoint's GAN (CHECKPOINT/gan/) on the same captions and seeds")
    p.add_argument("--diversity", type=int, default=0, metavar="SEEDS",
                   help="also draw the first 8 captions from SEEDS seeds each and report how much the drawings "
                        "differ (mean pairwise cosine distance of the judge's features; 0: one picture per caption)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i (default: 0)")
    p.add_argument("--batch-size", type=int, default=16, help="images denoised together (default: 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    return p.parse_args(argv)


def load_models(args: argparse.Namespace) -> tuple[ImagenPipeline | None, TextEncoder]:
    """The pipeline (None with --baselines-only) and the text encoder the image encoder learns to match."""
    device = resolve_device(args.device)
    if not args.checkpoint.exists():
        if args.baselines_only:  # the ceiling and the floor need no diffusion model
            return None, TextEncoder(device=device)
        hint = (" No trained weights are installed there: train them with python -m imagen.train and "
                "python -m imagen.export (see README), or pass --baselines-only")
        raise ValueError(f"checkpoint {args.checkpoint} not found."
                         + (hint if args.checkpoint == DEFAULT_CHECKPOINT else ""))
    pipe = ImagenPipeline.from_pretrained(args.checkpoint, device=device, dtype=args.dtype)
    if args.sr and pipe.sr_unet is None:
        raise ValueError(f"{args.checkpoint} has no super-resolution stage; drop --sr")
    for flag, field, values in (("--guidance", "guidance_scale", args.guidance), ("--steps", "steps", args.steps),
                                ("--sr-steps", "sr_steps", args.sr_steps),
                                ("--sr-guidance", "sr_guidance_scale", args.sr_guidance),
                                ("--sr-noise-level", "sr_noise_level", args.sr_noise_level),
                                ("--threshold", "threshold", args.threshold),
                                ("--guidance-min-t", "guidance_min_t", args.guidance_min_t)):
        for v in values or []:
            try:
                pipe.settings(**{field: v})
            except ValueError as e:
                raise ValueError(f"{flag} {v:g}: {e}") from e
    return (None if args.baselines_only else pipe), pipe.text_encoder


def evaluate(args: argparse.Namespace, pipe: ImagenPipeline | None, text_encoder: TextEncoder,
             ds: PreparedDataset, out: Path) -> dict:
    """Score the real images, noise and every setting; write OUT/results.json and the figures."""
    # 1. the judge: an image encoder trained on the real images outside the held-out split (cached)
    encoder, record = load_or_train(ds, text_encoder, device=text_encoder.device)
    train_index, held_out = holdout_split(len(ds), encoder.config.holdout, encoder.config.split_seed)
    if args.mode != "captions":
        out.mkdir(parents=True, exist_ok=True)
        if args.mode == "phrasing":
            results = evaluate_phrasing(args, pipe, text_encoder, ds, encoder, train_index, out)
        else:
            results = evaluate_colour(args, pipe, text_encoder, ds, train_index, out)
        results = {"checkpoint": None if pipe is None else str(args.checkpoint), "data": args.data,
                   "image_encoder": record, **results}
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(format_asked(results))
        print(f"wrote {out / 'results.json'} and the figures beside it")
        return results
    candidates = held_out if len(held_out) else np.arange(len(ds))
    eval_index = evaluation_index(ds, candidates, args.num_captions, encoder.config.split_seed)
    if len(eval_index) < args.num_captions:
        print(f"note: only {len(eval_index)} concepts to draw captions from; evaluating {len(eval_index)}",
              file=sys.stderr)
    if len(eval_index) < 2:
        raise ValueError(f"the dataset has {len(ds)} images, too few to evaluate two captions")
    prompts = [ds.main_captions[i] for i in eval_index]
    scorer = Scorer.build(ds, text_encoder, encoder, eval_index, train_index, seed=args.seed)

    # 2. the ceiling (the real images of the same captions) and the floors (colour blobs, noise)
    real_64 = from_uint8(ds.images_64[eval_index])  # (N, 3, 64, 64)
    results: dict = {"checkpoint": None if pipe is None else str(args.checkpoint), "data": args.data,
                     "num_captions": len(prompts), "seed": args.seed, "image_encoder": record,
                     "real": scorer.score(real_64), "blob": scorer.score(scorer.blobs),
                     "noise": scorer.score(noise_images(len(prompts), args.seed))}
    out.mkdir(parents=True, exist_ok=True)
    if pipe is not None:
        centre, settings = sweep.base_settings(pipe.defaults, args.guidance, args.steps, args.sampler,
                                               args.threshold, args.guidance_min_t)
        consistency = [v == "on" for v in args.sr_consistency] if args.sr_consistency else None
        sr_centre, sr_settings = sweep.sr_settings(pipe.defaults, args.sr_steps, args.sr_guidance,
                                                   args.sr_noise_level, consistency)
        sr_settings = sr_settings if args.sr else []
        batches = -(-len(prompts) // args.batch_size)
        total = batches * (sum(s["steps"] for s in settings) + sum(s["sr_steps"] for s in sr_settings)
                           + (sr_centre["sr_steps"] if sr_settings else 0))  # + the SR ceiling
        with tqdm(total=total, desc="generating", unit="step") as bar:
            # 3. the base stage at every setting: the same prompts and seeds each time
            show = slice(0, min(8, len(prompts)))
            rows, grid_rows, centre_images = [], [("real", to_pil(real_64[show]))], None
            for s in settings:
                bar.set_postfix(guidance=s["guidance_scale"], steps=s["steps"], sampler=s["sampler"],
                                threshold=s["threshold"], guidance_min_t=s["guidance_min_t"])
                images, seconds = sweep.generate_64(pipe, prompts, s, args.seed, args.batch_size, bar.update)
                rows.append({**s, **scorer.score(images), "seconds_per_image": round(seconds, 3)})
                grid_rows.append((base_label(s, centre), to_pil(images[show])))
                centre_images = images if s == centre else centre_images
            results |= {"defaults": asdict(pipe.defaults), "centre": centre, "base": rows}
            if args.gan:  # the GAN beside diffusion: the same captions and seeds, one forward pass each
                from .gan.sampler import GanSampler
                gan = GanSampler.from_pretrained(args.checkpoint, device=text_encoder.device, text_encoder=text_encoder)
                images, seconds = sweep.draw_gan(gan, prompts, args.seed, args.batch_size)
                results["gan"] = {**scorer.score(images), "seconds_per_image": round(seconds, 4)}
                grid_rows.append(("GAN", to_pil(images[show])))
            if args.diversity > 1:  # how much one caption's drawings differ from seed to seed
                few = prompts[:8]
                spread = sweep.seed_diversity(
                    encoder, lambda p, s: sweep.generate_64(pipe, p, centre, s, args.batch_size, bar.update)[0],
                    few, args.seed, args.diversity)
                results["diversity"] = {"seeds": args.diversity, "captions": len(few), "diffusion": spread}
                if args.gan:
                    results["diversity"]["gan"] = sweep.seed_diversity(
                        encoder, lambda p, s: sweep.draw_gan(gan, p, s, args.batch_size)[0], few, args.seed,
                        args.diversity)
            write_figures(rows, centre, results, out)
            sample_grid(grid_rows, prompts[show]).save(out / "samples.png")

            # 4. the SR stage on the centre's 64 px images: kept content (scored at 64 px) and sharpness
            if sr_settings:
                real_256 = from_uint8(ds.images_256[eval_index])
                upscaled = sweep.bicubic(centre_images, 256)
                results["sharpness_reference"] = {
                    "real_256": round(sharpness(real_256), 5),
                    "bicubic_of_real_64": round(sharpness(sweep.bicubic(real_64, 256)), 5),
                    "bicubic_of_generated_64": round(sharpness(upscaled), 5)}
                # the SR stage's own ceiling: its centre setting on the real 64 px images (the 256 -> 64
                # scoring path alone keeps real images' scores, so what this loses, the SR stage loses)
                def score_256(images: torch.Tensor) -> dict[str, float]:
                    return scorer.score(sweep.bicubic(images, 64))  # the judge sees 64 px

                bar.set_postfix(sr_input="real 64 px")
                # the SR stage thresholds at the percentile of the 64 px images it upsamples
                at_centre = {"threshold": centre["threshold"]}
                of_real, _ = sweep.super_resolve(pipe, real_64, prompts, sr_centre | at_centre, args.seed,
                                                 args.batch_size, bar.update)
                results |= {"sr_centre": sr_centre, "sr_of_real": score_256(of_real), "sr": []}
                for s in sr_settings:
                    bar.set_postfix(s)  # every SR setting, consistency included
                    images, seconds = sweep.super_resolve(pipe, centre_images, prompts, s | at_centre, args.seed,
                                                          args.batch_size, bar.update)
                    results["sr"].append({**s,
                                          **score_256(images),
                                          "sharpness": round(sharpness(images), 5),
                                          "seconds_per_image": round(seconds, 3)})
                    if s == sr_centre:
                        n = min(4, len(prompts))
                        sr_grid(upscaled[:n], images[:n], real_256[:n], prompts[:n]).save(out / "sr_samples.png")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"wrote {out / 'results.json'} and the figures beside it")
    return results


def write_figures(rows: list[dict], centre: dict, results: dict, out: Path) -> None:
    """The guidance sweep at the centre's steps and sampler; the step sweep per sampler, when there is one."""
    # the threshold and guided-interval sweeps are table rows only
    rows = [r for r in rows if (r["threshold"], r["guidance_min_t"]) == (centre["threshold"], centre["guidance_min_t"])]
    guidance_rows = [r for r in rows if (r["steps"], r["sampler"]) == (centre["steps"], centre["sampler"])]
    plot_sweep(guidance_rows, "guidance_scale", "guidance scale w", results, out / "guidance_sweep.png")
    step_rows = [r for r in rows if r["guidance_scale"] == centre["guidance_scale"]]
    if len({r["steps"] for r in step_rows}) > 1:
        plot_sweep(step_rows, "steps", "base-stage steps", results, out / "steps_sweep.png", group_key="sampler",
                   log_x=True)


def base_label(setting: dict, centre: dict) -> str:
    """"w=3, 15 steps, ddpm", the lowest guided timestep where guidance skips the last steps, and the
    thresholding percentile where it is not the centre's."""
    label = f"w={setting['guidance_scale']:g}, {setting['steps']} steps, {setting['sampler']}"
    if setting["guidance_min_t"]:
        label += f", guided t>={setting['guidance_min_t']}"
    p = setting["threshold"]
    return label if p == centre["threshold"] else f"{label}, threshold {p:g}"


def format_table(results: dict) -> str:
    """The results as a plain-text table, ceiling and floor first."""
    def line(name: str, r: dict, extra: str = "") -> str:
        r_prec = f"{r['r_precision']:.3f} ± {r['r_precision_se']:.3f}"
        r_col = f"{r['r_precision_colour']:.3f} ± {r['r_precision_colour_se']:.3f}"
        single = (f"{r['r_precision_single']:.3f} / {r['r_precision_colour_single']:.3f}"
                  if "r_precision_single" in r else "-")
        return f"{name:<38} {r_prec}   {r_col}   {r['frechet_distance']:>10.4g}   {single:<13}   {extra}".rstrip()
    n_single = results["real"].get("num_single", 0)
    judge = results["image_encoder"]
    lines = [f"{results['num_captions']} evaluation captions (one per concept), seed {results['seed']}; "
             f"{n_single} of them name a concept with a single image (no skin-tone variants)",
             f"judge: the image encoder trained in {judge['precision']}; "
             "compare scores only under the same judge",
             f"{'':<38} R-precision     colour-matched  Fréchet dist.   single-image: R / colour-matched",
             line("real images (ceiling)", results["real"]), line("colour blobs (floor)", results["blob"]),
             line("noise (floor)", results["noise"])]
    for r in results.get("base", []):
        lines.append(line(base_label(r, results["centre"]), r, f"{r['seconds_per_image']:.2f} s/image"))
    if "gan" in results:
        gan = results["gan"]
        lines.append(line("GAN (one forward pass)", gan, f"{gan['seconds_per_image']:.3f} s/image"))
    if "diversity" in results:
        d = results["diversity"]
        lines.append(f"diversity over {d['seeds']} seeds of {d['captions']} captions (0: one picture per caption): "
                     + ", ".join(f"{k} {v:.3f}" for k, v in d.items() if k not in ("seeds", "captions")))
    if "sr" in results:
        ref = results["sharpness_reference"]
        lines += ["super-resolution, scored downsampled to 64 px; sharpness = RMS gradient at 256 px: "
                  f"real {ref['real_256']:.4f}, bicubic of real 64 px {ref['bicubic_of_real_64']:.4f}, "
                  f"bicubic of generated 64 px {ref['bicubic_of_generated_64']:.4f}",
                  line("SR of the real 64 px (SR ceiling)", results["sr_of_real"])]
        for r in results["sr"]:
            name = (f"SR w={r['sr_guidance_scale']:g}, {r['sr_steps']} steps, aug {r['sr_noise_level']}"
                    + (", consistent" if r.get("sr_consistency") else ""))
            lines.append(line(name, r,
                              f"sharpness {r['sharpness']:.4f}, {r['seconds_per_image']:.2f} s/image"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.num_captions < 2 or args.batch_size < 1:
            raise ValueError("--num-captions must be at least 2 and --batch-size at least 1")
        if args.mode != "captions" and (args.sr or args.guidance or args.steps or args.sampler or args.threshold
                                        or args.guidance_min_t):
            raise ValueError(f"--mode {args.mode} scores the checkpoint's default settings: drop the sweeps")
        if args.style is not None and (args.mode == "captions" or not args.style.strip()):
            raise ValueError("--style names a drawing style (e.g. openmoji) for --mode phrasing, colour or grey")
        if (args.sr_steps or args.sr_guidance or args.sr_noise_level or args.sr_consistency) and not args.sr:
            raise ValueError("--sr-steps, --sr-guidance, --sr-noise-level and --sr-consistency sweep the SR stage: "
                             "add --sr")
        pipe, text_encoder = load_models(args)
        ds = load_dataset(args.data, args.cache_dir)
        out = args.out or Path("eval") / "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(args.data).name)
        results = evaluate(args, pipe, text_encoder, ds, out)
    except (ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError too
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
