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
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0


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
        if self.num_timesteps < 2:
            raise ValueError(f"num_timesteps must be at least 2, got {self.num_timesteps}")


@dataclass(frozen=True)
class Settings:
    """Sampling settings. A checkpoint stores its defaults; every call may override them."""

    guidance_scale: float = 4.0  # classifier-free guidance weight w of the base stage
    steps: int = 25  # denoising steps of the base stage
    sampler: str = "dpm++"
    sr: bool = True  # run the super-resolution stage
    sr_steps: int = 20
    sr_guidance_scale: float = 1.0  # 1 = no guidance: half the SR stage's cost
    sr_noise_level: int = 100  # augmentation timestep of the low-res input at sampling time
    threshold: float = 0.95  # dynamic-thresholding percentile

    def validate(self, sr_timesteps: int = 1000) -> Settings:
        """Raise a ValueError naming the first setting out of range."""
        for name in ("guidance_scale", "sr_guidance_scale"):
            w = getattr(self, name)
            if not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 <= w <= MAX_GUIDANCE:
                raise ValueError(f"{name} must be a number between 0 and {MAX_GUIDANCE:g}, got {w!r}")
        for name in ("steps", "sr_steps"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_STEPS:
                raise ValueError(f"{name} must be a whole number between 1 and {MAX_STEPS}, got {n!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {SAMPLERS}")
        if not isinstance(self.sr_noise_level, int) or not 0 <= self.sr_noise_level < sr_timesteps:
            raise ValueError(f"sr_noise_level must be a whole number in [0, {sr_timesteps}), "
                             f"got {self.sr_noise_level!r}")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold <= 1:
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> PipelineConfig:
        return cls(
            text_encoder=d.get("text_encoder", DEFAULT_TEXT_ENCODER),
            max_length=int(d.get("max_length", DEFAULT_MAX_LENGTH)),
            base=DiffusionConfig(**d.get("base", {})),
            sr=DiffusionConfig(**d["sr"]) if d.get("sr") else None,
            defaults=Settings(**d.get("defaults", {})),
        )

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{path} is not a valid pipeline config: {e}") from e
