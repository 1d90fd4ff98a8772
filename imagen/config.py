"""The small JSON config that names a pipeline's text encoder, each stage's diffusion settings
and the default sampling settings. It sits beside the U-Net weights in a checkpoint folder:

    checkpoints/<name>/pipeline.json
    checkpoints/<name>/base/{config.json, diffusion_pytorch_model.safetensors}
    checkpoints/<name>/sr/{config.json, diffusion_pytorch_model.safetensors}   (optional)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .diffusion import PREDICTION_TYPES, SCHEDULES
from .samplers import SAMPLERS
from .text_encoder import DEFAULT_MAX_LENGTH, DEFAULT_TEXT_ENCODER

CONFIG_NAME = "pipeline.json"
DEFAULT_CHECKPOINT = Path("checkpoints/emoji")  # the shipped weights: what the page, the CLI and evaluation use
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete or unreadable."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a count


@dataclass(frozen=True)
class DiffusionConfig:
    """How one stage was trained: its noise schedule and what its network predicts."""

    schedule: str = "cosine"
    prediction_type: str = "v_prediction"
    num_timesteps: int = 1000

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {self.schedule!r}; expected one of {SCHEDULES}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction type {self.prediction_type!r}; expected one of {PREDICTION_TYPES}")
        if not _is_int(self.num_timesteps) or self.num_timesteps < 2:
            raise ValueError(f"num_timesteps must be a whole number of at least 2, got {self.num_timesteps!r}")


@dataclass(frozen=True)
class Settings:
    """Sampling settings. A checkpoint stores its defaults; every call may override them."""

    guidance_scale: float = 4.0  # classifier-free guidance weight w of the base stage
    # Guidance only at t >= guidance_min_t; the lower-noise steps take the captioned prediction
    # alone (w = 1) and skip the caption-free half. 0: every step is guided.
    guidance_min_t: int = 0
    steps: int = 25  # denoising steps of the base stage
    sampler: str = "dpm++"
    sr: bool = True  # run the super-resolution stage
    sr_steps: int = 20
    sr_guidance_scale: float = 1.0  # 1 = no guidance: half the SR stage's cost
    sr_noise_level: int = 100  # augmentation timestep of the low-res input at sampling time
    sr_consistency: bool = False  # keep the 64 px input's low band exactly (consistency.py)
    threshold: float = 0.95  # dynamic-thresholding percentile

    def guidance_at(self, t: int) -> float:
        """The base stage's guidance weight at timestep t: w inside the guided interval, else 1."""
        return self.guidance_scale if t >= self.guidance_min_t else 1.0

    def validate(self, sr_timesteps: int = 1000, base_timesteps: int = 1000) -> Settings:
        """Raise a ValueError naming the first setting out of range."""
        for name in ("guidance_scale", "sr_guidance_scale"):
            w = getattr(self, name)
            if (isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)
                    or not 0 <= w <= MAX_GUIDANCE):
                raise ValueError(f"{name} must be a number between 0 and {MAX_GUIDANCE:g}, got {w!r}")
        for name in ("steps", "sr_steps"):
            n = getattr(self, name)
            if not _is_int(n) or not 1 <= n <= MAX_STEPS:
                raise ValueError(f"{name} must be a whole number between 1 and {MAX_STEPS}, got {n!r}")
        for name in ("sr", "sr_consistency"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.sampler, str) or self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {SAMPLERS}")
        if not _is_int(self.guidance_min_t) or not 0 <= self.guidance_min_t <= base_timesteps:
            raise ValueError(f"guidance_min_t must be a whole number in [0, {base_timesteps}], "
                             f"got {self.guidance_min_t!r}")
        if not _is_int(self.sr_noise_level) or not 0 <= self.sr_noise_level < sr_timesteps:
            raise ValueError(f"sr_noise_level must be a whole number in [0, {sr_timesteps}), "
                             f"got {self.sr_noise_level!r}")
        if (isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))
                or not 0 < self.threshold <= 1):
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")
        return self

    def with_overrides(self, **overrides: object) -> Settings:
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; expected some of {sorted(names)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class PipelineConfig:
    text_encoder: str = DEFAULT_TEXT_ENCODER
    max_length: int = DEFAULT_MAX_LENGTH
    base: DiffusionConfig = field(default_factory=DiffusionConfig)
    sr: DiffusionConfig | None = field(default_factory=DiffusionConfig)
    defaults: Settings = field(default_factory=Settings)
    # The drawing styles the training captions name ("twemoji style"): the page offers them, and adds
    # one to a prompt that names none. Empty for data whose captions name no style.
    styles: tuple[str, ...] = ()
    # The style a prompt that names none is drawn in, when the captions taught one (a model trained
    # with --caption-variety: "penguin" means "penguin, openmoji style"); None: a bare name blends them.
    default_style: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: object) -> PipelineConfig:
        """Build and validate a config read from JSON; a ValueError names the first bad entry."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object {{\"text_encoder\": ..., \"base\": {{...}}, ...}}, "
                             f"got {_json_type(d)}")
        for key in ("base", "sr", "defaults"):
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise ValueError(f"{key!r} must be a JSON object, got {_json_type(d[key])}")
        text_encoder, max_length = d.get("text_encoder", DEFAULT_TEXT_ENCODER), d.get("max_length", DEFAULT_MAX_LENGTH)
        if not isinstance(text_encoder, str) or not text_encoder.strip():
            raise ValueError(f"text_encoder must be a model name or folder, got {text_encoder!r}")
        if not _is_int(max_length) or max_length < 2:
            raise ValueError(f"max_length must be a whole number of tokens, at least 2, got {max_length!r}")
        styles = d.get("styles") or []
        if not isinstance(styles, list) or not all(isinstance(x, str) and x.strip() for x in styles):
            raise ValueError(f"styles must be a list of style names such as \"twemoji style\", got {styles!r}")
        default_style = d.get("default_style")
        if default_style is not None and default_style not in styles:
            raise ValueError(f"default_style must be one of the styles {styles}, got {default_style!r}")
        config = cls(
            text_encoder=text_encoder,
            max_length=max_length,
            base=_section("base", DiffusionConfig, d.get("base") or {}),
            sr=_section("sr", DiffusionConfig, d["sr"]) if d.get("sr") else None,
            defaults=_section("defaults", Settings, d.get("defaults") or {}),
            styles=tuple(styles),
            default_style=default_style,
        )
        try:
            config.defaults.validate(config.sr.num_timesteps if config.sr else MAX_STEPS, config.base.num_timesteps)
        except ValueError as e:
            raise ValueError(f"defaults: {e}") from e
        if config.defaults.sr and config.sr is None:
            raise ValueError("defaults: sr is true but the checkpoint has no super-resolution stage")
        return config

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        """Read and validate pipeline.json; anything wrong with it is one CheckpointError."""
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path} could not be read: {e}") from e
        except (json.JSONDecodeError, TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path} is not a valid pipeline config: {e}") from e


def _section(name: str, cls: type, d: dict) -> object:
    """cls(**d), with a ValueError that names the section and any unknown keys."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"{name}: unknown setting(s) {unknown}; expected some of {names}")
    try:
        return cls(**d)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from e


def _json_type(value: object) -> str:
    """A value's JSON type, as the person who wrote the file would call it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
