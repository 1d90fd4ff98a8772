"""Everything a training run is told, as one dataclass that the run folder stores as config.json.

Precedence: the defaults here < a `--config FILE.json` < flags on the command line. A resumed
run reads its own config.json and takes only the flags that may change mid-run (RESUMABLE).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .text_encoder import DEFAULT_MAX_LENGTH, DEFAULT_TEXT_ENCODER


@dataclass
class TrainConfig:
    stage: str = "base"  # "base" (64 px, text -> image) or "sr" (64 -> 256 px)
    data: str = "emoji"  # "emoji" | a folder of captioned images | hf:NAME
    run: str = "runs/base"
    preset: str = "cpu"  # U-Net size, see unets.py
    text_encoder: str = DEFAULT_TEXT_ENCODER
    max_length: int = DEFAULT_MAX_LENGTH
    schedule: str = "cosine"
    prediction_type: str = "v_prediction"
    num_timesteps: int = 1000
    steps: int = 20_000  # optimizer steps
    batch_size: int = 32  # per process and micro-batch
    grad_accum: int = 1
    lr: float = 4e-4
    lr_schedule: str = "cosine"  # "cosine" decays to min_lr_ratio * lr at `steps`; or "constant"
    min_lr_ratio: float = 0.1
    warmup_steps: int = 500
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    caption_dropout: float = 0.1  # for classifier-free guidance
    ema_decay: float = 0.9995
    crop_size: int = 64  # SR trains on random crops of the 256 px target
    sr_max_noise_level: int = 350  # SR augmentation levels are drawn from [0, this]
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16
    seed: int = 0
    log_every: int = 25
    save_every: int = 500
    sample_every: int = 1000
    sample_prompts: list[str] = field(default_factory=list)  # empty: 8 captions from the dataset
    log_with: str = "none"  # none | tensorboard | wandb
    cache_dir: str | None = None
    threads: int | None = None  # CPU threads; None leaves torch's default

    def validate(self) -> TrainConfig:
        checks = [
            (self.stage in ("base", "sr"), f"stage must be base or sr, got {self.stage!r}"),
            (self.steps >= 1, "steps must be at least 1"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.lr_schedule in ("cosine", "constant"), f"unknown lr_schedule {self.lr_schedule!r}"),
            (0 <= self.caption_dropout < 1, "caption_dropout must be in [0, 1)"),
            (0 < self.crop_size <= 256 and 256 % self.crop_size == 0, "crop_size must divide 256"),
            (0 <= self.sr_max_noise_level < self.num_timesteps, "sr_max_noise_level must be below num_timesteps"),
            (self.mixed_precision in ("auto", "no", "bf16", "fp16"),
             f"unknown mixed_precision {self.mixed_precision!r}"),
            (self.log_with in ("none", "tensorboard", "wandb"), f"unknown log_with {self.log_with!r}"),
            (min(self.log_every, self.save_every, self.sample_every) >= 1, "log/save/sample intervals must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    def save(self, path: Path) -> None:
        from .checkpointing import atomic_write_text
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}")
        return cls(**d)


# Settings a resumed run may change; the rest would silently make it a different run.
RESUMABLE = {"steps", "log_every", "save_every", "sample_every", "log_with", "threads", "cache_dir"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m imagen.train",
        description="Train one stage of the cascade. Ctrl-C saves a checkpoint; --resume continues.")
    p.add_argument("--config", type=Path, help="a JSON file of settings (flags override it)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its last checkpoint")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "sample_prompts":
            p.add_argument(flag, nargs="+", default=None, help="prompts for the sample grids")
            continue
        kind = type(getattr(defaults, f.name)) if getattr(defaults, f.name) is not None else str
        kind = int if f.name == "threads" else kind
        p.add_argument(flag, type=kind, default=None, help=f"default: {getattr(defaults, f.name)}")
    return p


def config_from_args(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """(config, resume) from the command line, a config file, and a resumed run's config.json."""
    args = parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "resume")}
    settings: dict = {}
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"config file {args.config} not found")
        settings.update(json.loads(args.config.read_text()))
    settings.update(given)
    run = Path(settings.get("run", TrainConfig.run))
    if args.resume and (run / "config.json").is_file():
        stored = json.loads((run / "config.json").read_text())
        changed = sorted(k for k in given if k not in RESUMABLE and k != "run" and stored.get(k) != given[k])
        if changed:
            raise ValueError(f"a resumed run keeps its settings; these cannot change: {changed}")
        settings = {**stored, **{k: v for k, v in given.items() if k in RESUMABLE}}
    return TrainConfig.from_dict(settings).validate(), args.resume
