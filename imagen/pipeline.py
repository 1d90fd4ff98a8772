"""The cascade: prompt -> text encoder -> 64 px base stage -> 256 px super-resolution stage.

    pipe = ImagenPipeline.from_pretrained("checkpoints/emoji")
    for step in pipe.generate(["red apple"], seed=0):   # every denoising step of both stages
        ...
    out = pipe(["red apple"], seed=0)                    # blocking: drains the same generator
    out.images_64[0], out.images_256[0]                  # PIL images
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from .config import CONFIG_NAME, CheckpointError, PipelineConfig, Settings
from .consistency import project
from .device import autocast, resolve_device, resolve_dtype
from .diffusion import alpha_bars, classifier_free_guidance, make_betas, noise_augment, q_sample, upsample
from .images import to_pil
from .instruments import AttentionProbe, GuidanceParts
from .samplers import Denoiser, Step, initial_noise, make_scheduler, sample_loop, schedule_timesteps
from .self_conditioning import sampling_input
from .text_encoder import TextEncoder, TextEncoderError, TextEncoding
from .unets import is_self_conditioned, unet_forward

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


def _generators(seed: int, batch: int) -> list[torch.Generator]:
    """One CPU generator per image, seeded seed + i, so image i never depends on its batch."""
    return [torch.Generator().manual_seed(int(seed) + i) for i in range(batch)]


class PromptTruncatedWarning(UserWarning):
    """A prompt was longer than the text encoder's token limit and was cut."""


@dataclass
class CascadeOutput:
    images_64: list  # PIL images from the base stage
    images_256: list | None  # PIL images from the SR stage, None when it was skipped


class ImagenPipeline:
    def __init__(self, text_encoder: TextEncoder, base_unet: UNet2DConditionModel | None,
                 sr_unet: UNet2DConditionModel | None, config: PipelineConfig,
                 device: str | torch.device = "auto", dtype: str | torch.dtype = "auto"):
        if (sr_unet is None) != (config.sr is None):
            raise ValueError("config.sr must be set exactly when an SR U-Net is given")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.config = config
        self.text_encoder = text_encoder
        self.text_encoder.to(self.device)
        # A pipeline may hold only one stage (training previews, evaluation of one stage).
        self.base_unet = self._prepared(base_unet)
        self.sr_unet = self._prepared(sr_unet)
        stages = {"base": config.base, "sr": config.sr}
        self._betas = {k: make_betas(c.schedule, c.num_timesteps) for k, c in stages.items() if c is not None}
        self._alpha_bar = {k: alpha_bars(b) for k, b in self._betas.items()}

    def _prepared(self, unet: UNet2DConditionModel | None) -> UNet2DConditionModel | None:
        """`unet` ready for sampling on this device: in eval mode, without gradients, channels-last on a
        CPU. A module that is not ready yet is copied first, so the caller's module (a training run's
        live EMA weights, say) is never changed behind its back; from_pretrained's own are prepared in place."""
        if unet is None:
            return None
        if not _is_prepared(unet, self.device):
            unet = prepare_unet(copy.deepcopy(unet), self.device)
        return unet

    # ---------------------------------------------------------------- loading and saving

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto",
                        text_encoder: TextEncoder | None = None) -> ImagenPipeline:
        """Load a checkpoint folder (safetensors only; nothing is unpickled)."""
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"no checkpoint folder at {path}")
        if not (path / CONFIG_NAME).is_file():
            raise CheckpointError(f"{path} is not a pipeline checkpoint: {CONFIG_NAME} is missing")
        config = PipelineConfig.load(path / CONFIG_NAME)  # a CheckpointError if anything in it is wrong
        device = resolve_device(device)
        base = prepare_unet(load_unet(path / "base"), device)
        sr = prepare_unet(load_unet(path / "sr"), device) if config.sr is not None else None
        if text_encoder is None:
            try:
                text_encoder = TextEncoder(config.text_encoder, config.max_length, device=device)
            except (TextEncoderError, RuntimeError) as e:
                raise CheckpointError(f"{path / CONFIG_NAME} names a text encoder that cannot be loaded: {e}") from e
        elif (text_encoder.name, text_encoder.max_length) != (config.text_encoder, config.max_length):
            raise ValueError(f"{path} was trained with text encoder {config.text_encoder!r} "
                             f"(max_length {config.max_length}), not {text_encoder.name!r}")
        return cls(text_encoder, base, sr, config, device=device, dtype=dtype)

    def save_pretrained(self, path: str | os.PathLike, half: bool = False) -> None:
        """Write the checkpoint folder atomically: a reader never sees a half-written one.
        `half=True` stores fp16 weights (a release: half the size; loading upcasts them)."""
        save_pipeline(path, self.config, self.base_unet, self.sr_unet, half=half)

    # ---------------------------------------------------------------- sampling

    @property
    def defaults(self) -> Settings:
        return self.config.defaults

    def settings(self, settings: Settings | None = None, **overrides: object) -> Settings:
        """`settings` (by default the checkpoint's) with `overrides` applied, validated."""
        settings = (self.defaults if settings is None else settings).with_overrides(**overrides)
        if not isinstance(settings.sr, bool):
            raise ValueError(f"sr must be True or False, got {settings.sr!r}")
        if settings.sr and self.sr_unet is None:
            raise ValueError("this checkpoint has no super-resolution stage; pass sr=False")
        return settings.validate(self.config.sr.num_timesteps if self.config.sr else 1000,
                                 self.config.base.num_timesteps)

    def check_prompts(self, prompts: str | list[str]) -> list[str]:
        """Normalise to a list of non-empty prompts, or raise a ValueError saying which is empty."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise ValueError("give at least one prompt")
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"prompt {i} is empty: describe the image you want, e.g. 'red apple'")
        return [p.strip() for p in prompts]

    def truncated(self, prompts: list[str]) -> list[bool]:
        """Which prompts exceed the text encoder's token limit (their tail is ignored). Tokenised only:
        the prompt is encoded once, when it is drawn."""
        return self.text_encoder.too_long(prompts)

    def num_timesteps(self, stage: str) -> int:
        """T, the number of diffusion steps `stage` was trained with."""
        if stage not in self._alpha_bar:
            raise ValueError(f"this pipeline has no {stage!r} stage; expected one of {sorted(self._alpha_bar)}")
        return len(self._alpha_bar[stage])

    def noise_level(self, stage: str, timestep: int) -> float:
        """sqrt(1 - alpha_bar_t): the standard deviation of the noise in x_t at `timestep` of `stage`
        (1 is pure noise, 0 a clean image). The demo shows it at every step."""
        if stage not in self._alpha_bar:
            raise ValueError(f"this pipeline has no {stage!r} stage; expected one of {sorted(self._alpha_bar)}")
        alpha_bar = self._alpha_bar[stage]
        if not 0 <= timestep < len(alpha_bar):
            raise ValueError(f"timestep must be in [0, {len(alpha_bar)}), got {timestep}")
        return float((1 - alpha_bar[int(timestep)]).clamp(min=0).sqrt())

    @torch.no_grad()
    def generate(self, prompts: str | list[str], seed: int = 0, settings: Settings | None = None,
                 attention: bool = False, guidance_parts: bool = False, **overrides: object) -> Iterator[Step]:
        """Yield every denoising step of the base stage, then of the SR stage.

        Image i is drawn from seed + i alone, so it does not depend on its batch. `settings` (by
        default the checkpoint's) and any overrides of its fields (guidance_scale, steps, sampler, sr,
        sr_steps, ...) say how to sample. The instruments fill
        in the base stage's steps: `attention` their per-token cross-attention maps (Step.attention),
        `guidance_parts` the x0 of the caption-free and the captioned predictions (Step.x0_uncond,
        Step.x0_cond; at w = 1 this runs the caption-free half too). Off, they cost nothing.
        """
        if self.base_unet is None:
            raise ValueError("this pipeline has no base stage; use super_resolve()")
        prompts = self.check_prompts(prompts)
        s = self.settings(settings, **overrides)
        generators = _generators(seed, len(prompts))

        # 1. encode the prompts, and the empty caption (guidance's caption-free half)
        text, uncond = self._encode(prompts)

        # 2. base stage: 64 px from pure noise
        x_T = initial_noise((len(prompts), 3, 64, 64), generators, self.device)
        parts = GuidanceParts() if guidance_parts else None
        denoiser = self._denoiser(self.base_unet, text, uncond, s.guidance_at, parts=parts)
        probe = AttentionProbe(self.base_unet) if attention else nullcontext()
        x_64 = None
        with probe:  # swaps in capturing attention processors; restored however the loop ends
            for step in sample_loop(denoiser, x_T, scheduler=make_scheduler(s.sampler, self._betas["base"]),
                                    steps=s.steps, alpha_bar=self._alpha_bar["base"],
                                    prediction_type=self.config.base.prediction_type, stage="base",
                                    threshold=s.threshold, generator=generators):
                if attention:
                    step.attention = probe.step_maps(keep_last=len(prompts))
                if parts is not None:
                    t = torch.full((len(prompts),), step.timestep, device=self.device)
                    step.x0_uncond, step.x0_cond = parts.x0(step.x_t, t, self._alpha_bar["base"],
                                                            self.config.base.prediction_type, s.threshold)
                x_64 = step.x_prev
                yield step

        # 3. SR stage: 64 -> 256 px
        if s.sr:
            yield from self._sr_stage(x_64, text, uncond, s, generators)

    @torch.no_grad()
    def super_resolve(self, images_64: torch.Tensor, prompts: str | list[str], seed: int = 0,
                      settings: Settings | None = None, **overrides: object) -> Iterator[Step]:
        """Run the SR stage alone on given 64 px images (B, 3, 64, 64) in [-1, 1]."""
        prompts = self.check_prompts(prompts)
        if images_64.shape != (len(prompts), 3, 64, 64):
            raise ValueError(f"expected images of shape ({len(prompts)}, 3, 64, 64), got {tuple(images_64.shape)}")
        s = self.settings(settings, **{"sr": True, **overrides})
        text, uncond = self._encode(prompts)
        yield from self._sr_stage(images_64.to(self.device), text, uncond, s, _generators(seed, len(prompts)))

    @torch.no_grad()
    def restore(self, images_64: torch.Tensor, prompts: str | list[str], start_timestep: int, seed: int = 0,
                settings: Settings | None = None, **overrides: object) -> Iterator[Step]:
        """Run the base stage from given 64 px images (B, 3, 64, 64) in [-1, 1], noised to the first
        sampler timestep at or below `start_timestep` (SDEdit, Meng et al. 2022). From a low timestep
        the model only cleans the image up; from a high one it must lay out the shape itself, so the
        timestep where restoration stops keeping the shape shows where the model's shapes go wrong."""
        if self.base_unet is None:
            raise ValueError("this pipeline has no base stage")
        prompts = self.check_prompts(prompts)
        if images_64.shape != (len(prompts), 3, 64, 64):
            raise ValueError(f"expected images of shape ({len(prompts)}, 3, 64, 64), got {tuple(images_64.shape)}")
        if not 0 <= start_timestep < self.num_timesteps("base"):
            raise ValueError(f"start_timestep must be in [0, {self.num_timesteps('base')}), got {start_timestep}")
        s = self.settings(settings, **overrides)
        scheduler = make_scheduler(s.sampler, self._betas["base"])
        timesteps = schedule_timesteps(scheduler, s.steps)
        start = next((i for i, t in enumerate(timesteps) if t <= start_timestep), len(timesteps) - 1)
        generators = _generators(seed, len(prompts))
        noise = initial_noise(images_64.shape, generators, self.device)
        t = torch.full((len(prompts),), timesteps[start], device=self.device)
        x_t = q_sample(images_64.to(self.device).float(), t, noise, self._alpha_bar["base"])
        text, uncond = self._encode(prompts)
        denoiser = self._denoiser(self.base_unet, text, uncond, s.guidance_at)
        yield from sample_loop(denoiser, x_t, scheduler=scheduler, steps=s.steps, alpha_bar=self._alpha_bar["base"],
                               prediction_type=self.config.base.prediction_type, stage="base",
                               threshold=s.threshold, generator=generators, start=start)

    def _encode(self, prompts: list[str]) -> tuple[TextEncoding, TextEncoding]:
        text = self.text_encoder.encode(prompts)
        if any(text.truncated):
            cut = [p for p, t in zip(prompts, text.truncated) if t]
            warnings.warn(f"{len(cut)} prompt(s) longer than {self.text_encoder.max_length} tokens "
                          f"were truncated: {cut[0][:60]!r}...", PromptTruncatedWarning, stacklevel=3)
        return text, self.text_encoder.encode_empty(len(prompts))

    def _sr_stage(self, x_64: torch.Tensor, text: TextEncoding, uncond: TextEncoding, s: Settings,
                  generators: list[torch.Generator]) -> Iterator[Step]:
        """Upsample, corrupt to a known noise level (noise conditioning augmentation), denoise at 256 px."""
        batch = x_64.shape[0]
        aug_t = torch.full((batch,), s.sr_noise_level, device=self.device, dtype=torch.long)
        clean = x_64.clamp(-1, 1)
        low_res = noise_augment(upsample(clean, 256), aug_t, self._alpha_bar["sr"], generators)
        x_T = initial_noise((batch, 3, 256, 256), generators, self.device)
        denoiser = self._denoiser(self.sr_unet, text, uncond, lambda t: s.sr_guidance_scale, low_res, aug_t)
        # consistency holds x0 to the clean input, not the noise-augmented one
        constrain = partial(project, y=clean.float()) if s.sr_consistency else None
        yield from sample_loop(denoiser, x_T, scheduler=make_scheduler(s.sampler, self._betas["sr"]),
                               steps=s.sr_steps, alpha_bar=self._alpha_bar["sr"],
                               prediction_type=self.config.sr.prediction_type, stage="sr", threshold=s.threshold,
                               generator=generators, constrain=constrain)

    def __call__(self, prompts: str | list[str], seed: int = 0, **overrides: object) -> CascadeOutput:
        """Blocking generation: drain `generate` and return PIL images."""
        last: dict[str, torch.Tensor] = {}
        for step in self.generate(prompts, seed=seed, **overrides):
            last[step.stage] = step.x_prev
        return CascadeOutput(to_pil(last["base"]), to_pil(last["sr"]) if "sr" in last else None)

    def _denoiser(self, unet: UNet2DConditionModel, text: TextEncoding, uncond: TextEncoding,
                  guidance_at: Callable[[int], float], low_res: torch.Tensor | None = None,
                  aug_t: torch.Tensor | None = None, parts: GuidanceParts | None = None) -> Denoiser:
        """The network as a function of (x_t, t, previous x0), with classifier-free guidance folded
        in at the weight `guidance_at(t)`. A guided step runs the conditional and unconditional halves
        as one batch; a step at w = 1 skips the unconditional half, unless `parts` is to record both.
        A self-conditioned base stage sees the previous step's x0 beside x_t (both halves the same)."""
        self_conditioned = low_res is None and is_self_conditioned("base", unet)
        cond = (text.text_embeds.to(self.device), text.text_mask.to(self.device), low_res, aug_t)
        both = (torch.cat([uncond.text_embeds, text.text_embeds]).to(self.device),
                torch.cat([uncond.text_mask, text.text_mask]).to(self.device),
                None if low_res is None else torch.cat([low_res, low_res]),
                None if aug_t is None else torch.cat([aug_t, aug_t]))

        def forward(x_in: torch.Tensor, t_in: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor,
                    cond_image: torch.Tensor | None, class_labels: torch.Tensor | None) -> torch.Tensor:
            if cond_image is not None:
                x_in = torch.cat([x_in, cond_image], dim=1)  # (B, 6, H, W): x_t beside the low-res image
            with autocast(self.device, self.dtype):
                return unet_forward(unet, x_in, t_in, embeds, mask, class_labels).float()

        def denoise(x_t: torch.Tensor, t: torch.Tensor, x0_prev: torch.Tensor | None = None) -> torch.Tensor:
            w = guidance_at(int(t[0]))
            if self_conditioned:
                x_t = sampling_input(x_t, x0_prev)
            if w == 1.0 and parts is None:
                return forward(x_t, t, *cond)
            out_uncond, out_cond = forward(torch.cat([x_t, x_t]), torch.cat([t, t]), *both).chunk(2)
            if parts is not None:
                parts.record(out_uncond, out_cond)
            return classifier_free_guidance(out_uncond, out_cond, w)

        return denoise


def prepare_unet(unet: UNet2DConditionModel, device: torch.device) -> UNet2DConditionModel:
    """Make `unet` (in place) ready to sample on `device`: eval mode, no gradients, and on a CPU the
    channels-last layout, on which oneDNN's convolutions run faster (13% off the cascade on a 2-core
    CPU, benchmarks/latency.py --levers; saving makes the weights contiguous again)."""
    unet = unet.to(device).eval().requires_grad_(False)
    if device.type == "cpu":
        unet.to(memory_format=torch.channels_last)
    return unet


def _is_prepared(unet: UNet2DConditionModel, device: torch.device) -> bool:
    weight = unet.conv_in.weight
    return (not unet.training and not weight.requires_grad and weight.device.type == device.type
            and (device.type != "cpu" or weight.is_contiguous(memory_format=torch.channels_last)))


def load_unet(folder: Path) -> UNet2DConditionModel:
    weights = (folder / WEIGHTS_NAME).is_file() or (folder / f"{WEIGHTS_NAME}.index.json").is_file()  # or shards
    if not (folder / "config.json").is_file() or not weights:
        raise CheckpointError(f"{folder} is incomplete: it needs config.json and {WEIGHTS_NAME}")
    try:
        unet = UNet2DConditionModel.from_pretrained(folder, use_safetensors=True, torch_dtype=torch.float32,
                                                    local_files_only=True)
    except Exception as e:  # safetensors and diffusers raise many kinds for a damaged file
        raise CheckpointError(f"could not load the U-Net in {folder}: {type(e).__name__}: {e}") from e
    # Fresh allocations: weights mapped from the file can take other SIMD paths on the CPU, and
    # the reloaded pipeline would then differ from the saved one in the last bits.
    for p in unet.parameters():
        p.data = p.data.clone()
    return unet


def save_pipeline(path: str | os.PathLike, config: PipelineConfig, base_unet: UNet2DConditionModel,
                  sr_unet: UNet2DConditionModel | None, half: bool = False, max_shard_mb: int | None = None) -> None:
    """Write a checkpoint folder into a temporary sibling, then swap it into place. `max_shard_mb`
    splits each U-Net's weights into files of at most that size (for transfers that cap file size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is meant to be shared
    try:
        (tmp / CONFIG_NAME).write_text(config.to_json())
        for name, unet in (("base", base_unet), ("sr", sr_unet)):
            if unet is None:
                continue
            unet = copy.deepcopy(unet).to(memory_format=torch.contiguous_format)  # safetensors wants contiguous
            if half:
                unet = unet.half()
            unet.save_pretrained(tmp / name, safe_serialization=True,
                                 max_shard_size=f"{max_shard_mb}MB" if max_shard_mb else "10GB")
        for written in tmp.rglob("*"):  # diffusers writes some files private (0600): make them shareable
            written.chmod(0o755 if written.is_dir() else 0o644)
        # Keep anything else in an existing folder (a model card, sample images).
        if path.is_dir():
            for extra in path.iterdir():
                if extra.name not in (CONFIG_NAME, "base", "sr") and not (tmp / extra.name).exists():
                    (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, tmp / extra.name)
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

