"""Export the EMA weights of training runs as one pipeline checkpoint folder.

    python -m imagen.export --run runs/emoji-base --run runs/emoji-sr --out checkpoints/emoji

Each run's config.json says its stage; give one base run and at most one SR run. An SR run alone
takes its base stage from a pipeline checkpoint (`--base-from checkpoints/emoji`), so a new SR
stage can be tried beside the shipped base. The newest
complete checkpoint of each run is used (or --step N). Weights are written as fp16 safetensors
by default (a release: half the size; the pipeline upcasts them when it loads).

A GAN run (`--stage gan`) is exported alone, into an existing pipeline checkpoint with the same
text encoder, as its gan/ folder (imagen/gan/sampler.py):

    python -m imagen.export --run runs/gan --out checkpoints/emoji
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffusers import UNet2DConditionModel

from .config import DiffusionConfig, PipelineConfig, Settings
from .data.emoji import STYLES, default_style, parse_styles
from .pipeline import load_unet, save_pipeline
from .training.checkpointing import complete_checkpoints, load_checkpoint, load_latest
from .training.config import TrainConfig


def run_config(run: Path) -> TrainConfig:
    if not (run / "config.json").is_file():
        raise ValueError(f"{run} is not a training run (config.json is missing)")
    return TrainConfig.from_dict(json.loads((run / "config.json").read_text()))


def run_checkpoint(run: Path, step: int | None = None) -> dict:
    """The newest (or the given step's) complete checkpoint of a run."""
    if step is None:
        latest = load_latest(run)  # a run still training may prune what it lists; load_latest looks again
        if latest is None:
            raise ValueError(f"{run} has no checkpoint yet")
        ckpt = latest[1]
    else:
        found = [p for p in complete_checkpoints(run) if p.name == f"step-{step:07d}"]
        if not found:
            raise ValueError(f"{run} has no checkpoint at step {step}")
        ckpt = load_checkpoint(found[0])
    return ckpt


def load_run(run: Path, step: int | None = None) -> tuple[TrainConfig, UNet2DConditionModel, int]:
    """A diffusion run's config and its EMA U-Net at the newest (or the given) checkpoint."""
    cfg = run_config(run)
    if not (run / "unet_config.json").is_file():
        raise ValueError(f"{run} is not a diffusion training run (unet_config.json is missing)")
    ckpt = run_checkpoint(run, step)
    unet = UNet2DConditionModel.from_config(json.loads((run / "unet_config.json").read_text()))
    unet.load_state_dict(ckpt["ema"])
    return cfg, unet, ckpt["state"]["step"]


def export_gan(run: Path, out: Path, half: bool = True, step: int | None = None) -> Path:
    """A GAN run's EMA generator, into the pipeline checkpoint `out` as out/gan/."""
    from .gan.generator import Generator, GeneratorConfig
    from .gan.sampler import save_gan
    cfg = run_config(run)
    if not (out / "pipeline.json").is_file():
        raise ValueError(f"{out} is not a pipeline checkpoint: a GAN is exported beside the diffusion stages, "
                         "into a checkpoint with the same text encoder (e.g. --out checkpoints/emoji)")
    pipeline = PipelineConfig.load(out / "pipeline.json")
    if (pipeline.text_encoder, pipeline.max_length) != (cfg.text_encoder, cfg.max_length):
        raise ValueError(f"{out} reads text with {pipeline.text_encoder!r} ({pipeline.max_length} tokens), the GAN "
                         f"with {cfg.text_encoder!r} ({cfg.max_length}): they cannot share one checkpoint")
    generator = Generator(GeneratorConfig.from_dict(json.loads((run / "gan_config.json").read_text())))
    ckpt = run_checkpoint(run, step)
    generator.load_state_dict(ckpt["ema"])
    print(f"{run}: GAN generator, EMA weights at step {ckpt['state']['step']}")
    return save_gan(generator, out, half=half)


def export(runs: list[Path], out: Path, half: bool = True, defaults: Settings | None = None,
           step: int | None = None, max_shard_mb: int | None = None,
           base_from: Path | None = None) -> PipelineConfig:
    stages: dict[str, tuple[TrainConfig, UNet2DConditionModel, int]] = {}
    for run in runs:
        cfg, unet, at = load_run(run, step)
        if cfg.stage in stages:
            raise ValueError(f"two {cfg.stage} runs given ({run} and {stages[cfg.stage][0].run}); give one of each")
        stages[cfg.stage] = (cfg, unet, at)
        print(f"{run}: {cfg.stage} stage, EMA weights at step {at}")
    if "base" in stages and base_from is not None:
        raise ValueError("give either a base-stage run or --base-from, not both")
    if "base" in stages:
        base_cfg = stages["base"][0]
        text_encoder, max_length, base_diffusion = base_cfg.text_encoder, base_cfg.max_length, _diffusion(base_cfg)
        base_unet = stages["base"][1]
        is_emoji = base_cfg.data.split(":")[0] == "emoji"
        styles = emoji_styles(parse_styles(base_cfg.data)) if is_emoji else ()
        bare_style = f"{default_style(parse_styles(base_cfg.data))} style" if is_emoji and base_cfg.caption_variety \
            else None
    elif base_from is not None:
        source = PipelineConfig.load(base_from / "pipeline.json")  # a CheckpointError (a ValueError) if damaged
        text_encoder, max_length, base_diffusion = source.text_encoder, source.max_length, source.base
        base_unet = load_unet(base_from / "base")
        styles, bare_style = source.styles, source.default_style
        print(f"{base_from}: base stage (--base-from)")
    else:
        raise ValueError("give a base-stage run (--run runs/NAME trained with --stage base), "
                         "or --base-from CHECKPOINT beside an SR run")
    if "sr" in stages:
        sr_cfg = stages["sr"][0]
        if (sr_cfg.text_encoder, sr_cfg.max_length) != (text_encoder, max_length):
            raise ValueError("the base and SR stages used different text encoders; they cannot share one pipeline")
    defaults = defaults or Settings()
    config = PipelineConfig(
        text_encoder=text_encoder,
        max_length=max_length,
        base=base_diffusion,
        sr=_diffusion(stages["sr"][0]) if "sr" in stages else None,
        defaults=defaults if "sr" in stages else Settings(**{**vars(defaults), "sr": False}),
        styles=styles,
        default_style=bare_style,
    )
    save_pipeline(out, config, base_unet, stages["sr"][1] if "sr" in stages else None, half=half,
                  max_shard_mb=max_shard_mb)
    return config


def emoji_styles(styles: tuple[str, ...] = STYLES) -> tuple[str, ...]:
    """The styles the emoji captions name ("red apple, twemoji style"), the page's default first:
    OpenMoji's outlined drawings come out the most recognisable (the model card's "Naming a style"
    section)."""
    first = f"{default_style(styles)} style"
    return tuple(sorted((f"{style} style" for style in styles), key=lambda s: s != first))


def _diffusion(cfg: TrainConfig) -> DiffusionConfig:
    return DiffusionConfig(cfg.schedule, cfg.prediction_type, cfg.num_timesteps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagen.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, action="append", required=True, help="a training run folder (repeat for SR)")
    p.add_argument("--out", type=Path, required=True, help="the checkpoint folder to write, e.g. checkpoints/NAME")
    p.add_argument("--step", type=int, help="export this checkpoint step instead of the newest")
    p.add_argument("--float32", action="store_true", help="keep fp32 weights instead of fp16")
    p.add_argument("--defaults", type=Path, help="a JSON file of default sampling settings (see config.Settings)")
    p.add_argument("--max-shard-mb", type=int, help="split each stage's weights into files of at most this many MB")
    p.add_argument("--base-from", type=Path, help="with an SR run alone: the base stage of this pipeline checkpoint")
    args = p.parse_args(argv)
    try:
        defaults = Settings(**json.loads(args.defaults.read_text())).validate() if args.defaults else None
        if any(run_config(run).stage == "gan" for run in args.run):
            if len(args.run) > 1 or args.defaults or args.base_from or args.max_shard_mb:
                raise ValueError("a GAN run is exported alone, with --out naming the checkpoint it joins")
            export_gan(args.run[0], args.out, half=not args.float32, step=args.step)
        else:
            export(args.run, args.out, half=not args.float32, defaults=defaults, step=args.step,
                   max_shard_mb=args.max_shard_mb, base_from=args.base_from)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {args.out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
