"""Everything a training run is told, as one dataclass that the run folder stores as config.json.

Precedence: the defaults here < a `--config FILE.json` < flags on the command line. A resumed
run reads its own config.json and takes only the flags that may change mid-run (RESUMABLE).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..data.phrasing import phrasing_set
from ..diffusion import LOSS_WEIGHTINGS
from ..files import atomic_write_text
from ..text_encoder import DEFAULT_MAX_LENGTH, DEFAULT_TEXT_ENCODER


def _opt(default: object, help: str) -> object:
    """A setting with the help text that `--help` shows."""
    if isinstance(default, list):
        return field(default_factory=list, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    stage: str = _opt("base", "base (64 px, text -> image), sr (64 -> 256 px), or gan (the GAN beside diffusion, "
                              "64 px in one forward pass)")
    data: str = _opt("emoji", "emoji, a folder of captioned images, or hf:NAME[@split]")
    run: str = _opt("runs/base", "the run folder: config, log, sample grids, checkpoints")
    preset: str = _opt("cpu", "U-Net size: tiny, cpu, cpu-deep or cpu-large (base only), or gpu; for the gan "
                              "stage its generator: tiny or cpu")
    text_encoder: str = _opt(DEFAULT_TEXT_ENCODER, "frozen text encoder: the packaged default, or a T5 path/hub id")
    max_length: int = _opt(DEFAULT_MAX_LENGTH, "text tokens per caption")
    schedule: str = _opt("cosine", "noise schedule: cosine or linear")
    prediction_type: str = _opt("v_prediction", "what the network predicts: v_prediction or epsilon")
    num_timesteps: int = _opt(1000, "diffusion steps T of the training process")
    steps: int = _opt(20_000, "optimizer steps in all")
    time_budget_s: float = _opt(0.0, "when > 0: 50 steps into the run, set --steps to what its measured speed "
                                     "fits in this many seconds from its start (a chunk of known length, e.g. "
                                     "on a lent GPU), so the cosine schedule ends in time; saved in config.json")
    batch_size: int = _opt(32, "images per micro-batch and process")
    grad_accum: int = _opt(1, "micro-batches per optimizer step")
    lr: float = _opt(4e-4, "peak AdamW learning rate")
    lr_schedule: str = _opt("cosine", "cosine (decays to min_lr_ratio * lr at --steps) or constant")
    min_lr_ratio: float = _opt(0.1, "the cosine schedule's final fraction of lr")
    warmup_steps: int = _opt(500, "linear warmup steps")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    grad_clip: float = _opt(1.0, "gradient norm clip (0: off)")
    caption_dropout: float = _opt(0.1, "share of captions replaced by the empty one (for guidance)")
    pooled_text_dropout: float = _opt(0.0, "share of captions that the U-Net's pooled text path (add_embedding) "
                                           "reads as the empty caption while cross-attention still reads them, "
                                           "so that cross-attention learns to carry the concept too")
    loss_weighting: str = _opt("none", "none (the simple loss) or min_snr (Hang et al. 2023: min(SNR, gamma) per t)")
    min_snr_gamma: float = _opt(5.0, "gamma of the min_snr loss weighting")
    timestep_shift: float = _opt(1.0, "draw training timesteps as if the schedule were shifted toward noise "
                                      "by this factor (simple diffusion): 1 uniform, 2 puts the median t near 700")
    balance: float = _opt(0.0, "sample image i with weight 1 / (images of its concept) ** this: "
                               "0 uniform over images, 1 uniform over concepts (skin-tone variants share one)")
    caption_variety: bool = _opt(False, "emoji data: caption each image anew every step (everyday phrasings, "
                                        "aliases, colour words, the style named or, for the default style, not), "
                                        "and recolour some images into the colour their caption names")
    recolour: float = _opt(0.5, "with --caption-variety: share of clearly one-coloured drawings recoloured into "
                                "another hue and captioned with it")
    phrasings: str = _opt("everyday", "with --caption-variety: the training frames drawn from: core (the 24 "
                                      "fine-tune 17 trained with) or everyday (those and 51 everyday sentences)")
    tint_grey: float = _opt(0.0, "with --caption-variety: share of grey-filled drawings (an elephant, a cloud) "
                                 "whose grey fill is tinted into a colour and captioned with it (0: off)")
    self_condition: bool = _opt(False, "base: the U-Net also sees its previous estimate of x0 (self-conditioning, "
                                       "Chen et al. 2022); a warm start from a plain base adds the input at zero")
    init_from: str | None = _opt(None, "start from the weights of this stage in a pipeline checkpoint "
                                       "folder (e.g. checkpoints/emoji), not from random ones")
    ema_decay: float = _opt(0.9995, "decay of the weights' moving average, which is sampled and exported")
    gan_text: str = _opt("words", "gan: what of the caption the generator sees: none (unconditional), pooled "
                                  "(the sentence) or words (the sentence and cross-attention to each word)")
    gan_kernels: int = _opt(4, "gan: size of the generator's kernel bank (1: no sample-adaptive kernels)")
    matching_weight: float = _opt(1.0, "gan: weight of the matching-aware loss (real drawings with another "
                                       "sample's caption count as fake); 0 turns it off")
    contrastive_weight: float = _opt(0.0, "gan: weight of a contrastive loss on the generator from an "
                                          "image-text model trained on the data (not the evaluation's judge)")
    r1_gamma: float = _opt(0.5, "gan: weight of the R1 penalty on real drawings")
    crop_size: int = _opt(64, "SR: side of the random crops of the 256 px targets")
    sr_max_noise_level: int = _opt(350, "SR: augmentation levels are drawn from [0, this]")
    mixed_precision: str = _opt("auto", "auto (bf16 where it is fast: a bf16 GPU or a CPU with bf16 "
                                        "kernels; else fp16 on a GPU, float32 on a CPU), no, bf16 or fp16")
    seed: int = _opt(0, "seed of the initial weights and of every step's random draws")
    log_every: int = _opt(25, "steps between log.jsonl lines")
    save_every: int = _opt(500, "steps between checkpoints")
    sample_every: int = _opt(1000, "steps between sample grids")
    sample_prompts: list[str] = _opt([], "prompts of the sample grids (default: 8 captions from the dataset)")
    log_with: str = _opt("none", "none, tensorboard or wandb")
    cache_dir: str | None = _opt(None, "dataset cache folder (default: $IMAGEN_CACHE or ./cache)")
    threads: int | None = _opt(None, "CPU threads (default: torch's choice)")

    def validate(self) -> TrainConfig:
        checks = [
            (self.stage in ("base", "sr", "gan"), f"stage must be base, sr or gan, got {self.stage!r}"),
            (self.gan_text in ("none", "pooled", "words"),
             f"gan_text must be none, pooled or words, got {self.gan_text!r}"),
            (self.gan_kernels >= 1, "gan_kernels must be at least 1"),
            (min(self.matching_weight, self.contrastive_weight, self.r1_gamma) >= 0,
             "matching_weight, contrastive_weight and r1_gamma must be 0 or more"),
            (self.steps >= 1, "steps must be at least 1"),
            (self.time_budget_s >= 0, "time_budget_s must be 0 (off) or positive"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.lr_schedule in ("cosine", "constant"), f"unknown lr_schedule {self.lr_schedule!r}"),
            (0 <= self.caption_dropout < 1, "caption_dropout must be in [0, 1)"),
            (0 <= self.pooled_text_dropout < 1, "pooled_text_dropout must be in [0, 1)"),
            (self.pooled_text_dropout == 0 or self.stage in ("base", "sr"),
             "pooled_text_dropout is for the diffusion stages (base, sr)"),
            (self.loss_weighting in LOSS_WEIGHTINGS,
             f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}"),
            (self.min_snr_gamma > 0, "min_snr_gamma must be positive"),
            (self.timestep_shift > 0, "timestep_shift must be positive"),
            (0 <= self.balance <= 1, "balance must be in [0, 1]"),
            (isinstance(self.caption_variety, bool),
             f"caption_variety must be true or false, got {self.caption_variety!r}"),
            (not self.caption_variety or self.data.split(":")[0] == "emoji",
             "caption_variety builds captions from emoji names and styles: it needs --data emoji"),
            (0 <= self.recolour <= 1, "recolour must be in [0, 1]"),
            (0 <= self.tint_grey <= 1, "tint_grey must be in [0, 1]"),
            (isinstance(self.self_condition, bool),
             f"self_condition must be true or false, got {self.self_condition!r}"),
            (not self.self_condition or self.stage == "base", "self_condition is for the base stage only"),
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
        phrasing_set(self.phrasings)  # the same ValueError for an unknown set as every other user of the sets
        return self

    def save(self, path: Path) -> None:
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
        default = getattr(defaults, f.name)
        if f.name == "sample_prompts":
            p.add_argument(flag, nargs="+", default=None, help=f.metadata["help"])
            continue
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", default=None, help=f.metadata["help"])
            continue
        kind = int if f.name == "threads" else type(default) if default is not None else str
        p.add_argument(flag, type=kind, default=None, help=f"{f.metadata['help']} (default: {default})")
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
