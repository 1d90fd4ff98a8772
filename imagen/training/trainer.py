"""The training loop of one stage of the cascade (the command is `python -m imagen.train`).

The run folder holds config.json, log.jsonl (step, loss, lr, samples/s), samples/ (grids from
the EMA weights) and checkpoints/ (atomic; see checkpointing.py). Every random draw of step n
comes from a generator seeded by (seed, n), so a resumed run takes exactly the batches, noise
and timesteps the uninterrupted run would have taken.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm import tqdm

from ..config import DiffusionConfig, PipelineConfig, Settings
from ..data import default_cache_dir, load_dataset
from ..data.balance import concept_weights
from ..data.caption_variety import CaptionVariety
from ..data.emoji import STYLES, default_style, emoji_aliases, parse_styles
from ..data.phrasing import CaptionPolicy, phrasing_set
from ..data.text_cache import CaptionEmbeddings, cached_text_embeddings
from ..device import fast_bfloat16
from ..diffusion import (
    alpha_bars,
    make_betas,
    noise_augment,
    predict_x0,
    q_sample,
    shifted_timesteps,
    training_loss,
    upsample,
)
from ..files import atomic_write_text
from ..images import from_uint8, grid, to_pil
from ..pipeline import ImagenPipeline, load_unet
from ..text_encoder import TextEncoder
from ..unets import build_unet, unet_forward
from .checkpointing import load_latest, save_checkpoint
from .config import TrainConfig
from .ema import EMA
from .growth import load_deepened
from .self_conditioning import training_input, widen_input


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then constant or cosine decay to min_lr_ratio * lr. A pure function of the
    step, so a resumed run needs no scheduler state."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Batches:
    """Micro-batch m of the run, for this process: a fresh permutation every epoch, or, with
    sampling weights, a weighted draw without replacement seeded by m alone (so a resumed run
    draws the same batches)."""

    def __init__(self, n_images: int, batch_size: int, seed: int, rank: int, world: int,
                 weights: torch.Tensor | None = None):
        self.n, self.seed, self.rank, self.world = n_images, seed, rank, world
        self.global_batch = batch_size * world
        if n_images < self.global_batch:
            raise ValueError(f"the dataset has {n_images} images, fewer than one batch "
                             f"({self.global_batch}); lower --batch-size")
        self.per_epoch = n_images // self.global_batch
        self.weights = weights
        self._epoch, self._perm = -1, None

    def indices(self, m: int) -> torch.Tensor:
        if self.weights is not None:
            g = torch.Generator().manual_seed(self.seed * 100_003 + 7_919 * m + 1)
            chunk = torch.multinomial(self.weights, self.global_batch, replacement=False, generator=g)
            return chunk[self.rank::self.world]
        epoch, b = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        chunk = self._perm[b * self.global_batch:(b + 1) * self.global_batch]
        return chunk[self.rank::self.world]

    def generator(self, m: int) -> torch.Generator:
        """The source of every random draw of micro-batch m on this process."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + m) * 64 + self.rank)


def load_stage_weights(unet: torch.nn.Module, checkpoint: Path, stage: str) -> None:
    """Warm start: copy one stage's weights from a pipeline checkpoint folder into `unet`, which
    must have the same architecture (the same --preset and text encoder), or the same with more
    layers at some levels (e.g. cpu -> cpu-deep), which start as the identity (imagen.growth), or
    the same with self-conditioning's input channels added, which start at zero."""
    if not (checkpoint / stage).is_dir():
        raise ValueError(f"--init-from {checkpoint}: no {stage} stage there ({checkpoint / stage} is missing)")
    source = load_unet(checkpoint / stage)  # a CheckpointError (a ValueError) if damaged
    plain, own = source.state_dict(), unet.state_dict()
    state = widen_input(plain, own)
    if state is not plain:
        print(f"--init-from {checkpoint}: its {stage} U-Net gains self-conditioning's input channels "
              "(their weights start at zero)")
    mismatched = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    if not mismatched and not set(state) - set(own):
        unet.load_state_dict(state)
        return
    try:
        load_deepened(unet, state, dict(source.config))
    except ValueError as e:
        raise ValueError(f"--init-from {checkpoint}: its {stage} U-Net has another architecture than "
                         f"this run's --preset ({len(mismatched)} tensors differ, e.g. {mismatched[:1]}; "
                         f"{e})") from None
    print(f"--init-from {checkpoint}: deepened its {stage} U-Net from {source.config.layers_per_block} to "
          f"{unet.config.layers_per_block} layers per level (the added layers start as the identity)")


def trim_log(path: Path, step: int) -> None:
    """Drop the records of steps after `step` (and any line cut short by a kill): a run resumed from
    step n logs steps n+1... again, and each step should appear once."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(kept))


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool):
        self.created = time.perf_counter()  # --time-budget-s counts from here: loading the data is part of it
        self.cfg = cfg
        self.run = Path(cfg.run)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.log_with != "none":
            import importlib.util
            needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}[cfg.log_with]
            if not any(importlib.util.find_spec(name) for name in needs):
                raise ValueError(f"--log-with {cfg.log_with} needs the {needs[0]} package: pip install {needs[0]}")
        precision = cfg.mixed_precision
        if precision == "auto":
            # bf16 where it is fast; a GPU without it takes fp16, a CPU without it float32 (an AVX2-only
            # CPU emulates bf16 at several times float32's cost).
            cuda = torch.cuda.is_available()
            device = torch.device("cuda" if cuda else "cpu")
            precision = "bf16" if fast_bfloat16(device) else "fp16" if cuda else "no"
            if cfg.stage == "gan":  # GANs are known to diverge in reduced precision: float32, with clipping
                precision = "no"
        # Accelerate keeps one process-wide state and refuses a second precision in the same process
        # (a GAN run in fp32 after a diffusion run in bf16, as tests and notebooks do): start afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
        self.acc = Accelerator(mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum,
                               log_with=None if cfg.log_with == "none" else cfg.log_with,
                               project_dir=str(self.run))
        self._prepare_run_dir(resume)

        # Data: images in memory as uint8, captions as cached embeddings.
        ds = load_dataset(cfg.data, cfg.cache_dir or default_cache_dir())
        styles = ds.info.get("styles")
        if cfg.data == "emoji" and styles and tuple(styles) != STYLES:
            # A GPU pack's emoji set may hold other styles: the run's config names them, so that its
            # export offers them wherever it is exported.
            cfg.data = "emoji:" + ",".join(styles)
            if self.acc.is_main_process:
                cfg.save(self.run / "config.json")
        self.encoder = TextEncoder(cfg.text_encoder, cfg.max_length)
        self.variety: CaptionVariety | None = None
        if cfg.caption_variety:  # captions drawn and encoded every step; the encoder works beside the U-Net
            self.encoder.to(self.acc.device)
            self.variety = CaptionVariety(ds.captions, ds.images_64, emoji_aliases(),
                                          default_style(parse_styles(cfg.data)), cfg.recolour,
                                          CaptionPolicy(templates=phrasing_set(cfg.phrasings)), tint=cfg.tint_grey)
            empty = self.encoder.encode([""], use_cache=False)
            self.empty_text = empty.text_embeds[0].cpu(), empty.text_mask[0].cpu()
        else:
            self.captions: CaptionEmbeddings = cached_text_embeddings(ds, self.encoder)
            self.empty_text = self.captions.empty_embeds.float(), self.captions.empty_mask
        self.images_64 = torch.from_numpy(np.array(ds.images_64))
        self.images_256 = torch.from_numpy(np.array(ds.images_256)) if cfg.stage == "sr" else None
        self.preview_index = [i * len(ds) // 8 for i in range(8)]
        self.preview_captions = [ds.main_captions[i] for i in self.preview_index]
        self.preview_prompts = cfg.sample_prompts or self.preview_captions
        weights = concept_weights(ds.main_captions, cfg.balance) if cfg.balance > 0 else None
        self.batches = Batches(len(ds), cfg.batch_size, cfg.seed, self.acc.process_index, self.acc.num_processes,
                               weights)
        # The batch's random draws happen on the CPU (one generator per step): they read this copy,
        # the loss reads the device's, so no step copies the schedule back from an accelerator.
        self.alpha_bar_cpu = alpha_bars(make_betas(cfg.schedule, cfg.num_timesteps))
        self.alpha_bar = self.alpha_bar_cpu.to(self.acc.device)

        torch.manual_seed(cfg.seed)  # the initial weights
        self.log_extra: dict[str, float] = {}  # more figures for log.jsonl, set by a model's optimise()
        self.model, self.optimizer, self.ema = self.build(resume)
        self.step = 0
        if resume:
            self._resume()
        self.model, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.ema.model.to(self.acc.device)
        if self.acc.is_main_process and cfg.log_with != "none":
            self.acc.init_trackers(self.run.name, config={k: str(v) for k, v in vars(cfg).items()})
        self.stop_requested = False

    def build(self, resume: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, EMA]:
        """The trained model (a U-Net), its optimizer and the EMA of its weights; its config is written
        beside the run's as unet_config.json, which export reads."""
        cfg = self.cfg
        unet = build_unet(cfg.stage, cfg.preset, self.encoder.dim, cfg.self_condition)
        if cfg.init_from and not resume:
            load_stage_weights(unet, Path(cfg.init_from), cfg.stage)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
        (self.run / "unet_config.json").write_text(json.dumps(dict(unet.config), indent=2, default=list))
        return unet, optimizer, EMA(unet, cfg.ema_decay)

    def _prepare_run_dir(self, resume: bool) -> None:
        has_checkpoint = (self.run / "checkpoints").is_dir() and any((self.run / "checkpoints").glob("step-*"))
        if has_checkpoint and not resume:
            raise ValueError(f"{self.run} already holds a training run: pass --resume to continue it, "
                             "or choose another --run")
        if resume and not has_checkpoint:
            print(f"{self.run} has no checkpoint yet: starting from step 0")
        if self.acc.is_main_process:
            (self.run / "samples").mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.run / "config.json")

    def _resume(self) -> None:
        found = load_latest(self.run)
        if found is None:
            return
        path, ckpt = found
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.ema.load_state_dict(ckpt["ema"], ckpt["state"]["ema_updates"])
        self.step = ckpt["state"]["step"]
        print(f"resumed {self.run} at step {self.step} from {path.name}")

    # ------------------------------------------------------------------ one micro-batch

    def captioned(self, idx: torch.Tensor, g: torch.Generator, images: torch.Tensor,
                  low_res: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor,
                                                                torch.Tensor]:
        """The batch's images (and the SR stage's low-res inputs), some recoloured with --caption-variety,
        and one caption each: text_embeds (B, L, D) and text_mask (B, L) on the CPU. A random variant
        of the dataset's captions, or with --caption-variety a caption drawn and encoded now."""
        if self.variety is None:
            rows = self.captions.rows(idx, g)
            return images, low_res, self.captions.text_embeds[rows].float(), self.captions.text_mask[rows]
        captions, images, low_res = self.variety.draw(idx, images, g, low_res)
        text = self.encoder.encode(captions, use_cache=False)
        return images, low_res, text.text_embeds.cpu(), text.text_mask.cpu()

    def loss(self, m: int) -> torch.Tensor:
        """The diffusion loss of micro-batch m (Imagen's: MSE on v or eps at a random t)."""
        cfg, device = self.cfg, self.acc.device
        idx = self.batches.indices(m)
        g = self.batches.generator(m)
        b = len(idx)
        # Caption: a random variant (or, with --caption-variety, a fresh caption and perhaps a new
        # colour), dropped to the empty caption with p = caption_dropout (CFG).
        is_base = cfg.stage == "base"
        full = None if is_base else from_uint8(self.images_256[idx])  # (B, 3, 256, 256)
        low = from_uint8(self.images_64[idx])  # (B, 3, 64, 64)
        drawn, low_res, embeds, mask = self.captioned(idx, g, low if is_base else full, None if is_base else low)
        low, full = (drawn, None) if is_base else (low_res, drawn)
        empty_embeds, empty_mask = self.empty_text
        drop = torch.rand(b, generator=g) < cfg.caption_dropout
        embeds[drop] = empty_embeds
        mask[drop] = empty_mask
        pooled = None
        if cfg.pooled_text_dropout > 0:  # drawn only then, so that runs without it draw as before
            pooled = embeds.clone()
            pooled[torch.rand(b, generator=g) < cfg.pooled_text_dropout] = empty_embeds
        if cfg.timestep_shift == 1:  # the uniform draw, kept bit for bit so older runs resume identically
            t = torch.randint(0, cfg.num_timesteps, (b,), generator=g)
        else:
            t = shifted_timesteps(torch.rand(b, generator=g, dtype=torch.float64), self.alpha_bar_cpu,
                                  cfg.timestep_shift)
        class_labels = None
        if is_base:
            x0 = low  # (B, 3, 64, 64)
            cond = None
        else:
            # A random crop of the 256 px target and the same window of the upsampled 64 px input.
            c = cfg.crop_size
            ys, xs = (torch.randint(0, 256 - c + 1, (b,), generator=g) for _ in range(2))
            up = upsample(low, 256)
            x0 = torch.stack([full[i, :, ys[i]:ys[i] + c, xs[i]:xs[i] + c] for i in range(b)])
            cond = torch.stack([up[i, :, ys[i]:ys[i] + c, xs[i]:xs[i] + c] for i in range(b)])
            class_labels = torch.randint(0, cfg.sr_max_noise_level + 1, (b,), generator=g)
            cond = noise_augment(cond, class_labels, self.alpha_bar_cpu, g)
        eps = torch.randn(x0.shape, generator=g)
        x0, eps, t, embeds, mask = (v.to(device) for v in (x0, eps, t, embeds, mask))
        pooled = None if pooled is None else pooled.to(device)
        x_t = q_sample(x0, t, eps, self.alpha_bar)
        x_in = x_t if cond is None else torch.cat([x_t, cond.to(device)], dim=1)
        if cfg.self_condition:  # its draw comes after the others, which match a run without it
            def estimate_x0(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
                out = unet_forward(self.model, x, t[r], embeds[r], mask[r],
                                   pooled_embeds=None if pooled is None else pooled[r]).float()
                return predict_x0(x_t[r], t[r], out, self.alpha_bar, cfg.prediction_type).clamp(-1, 1)
            x_in = training_input(x_t, estimate_x0, g)
        out = unet_forward(self.model, x_in, t, embeds, mask,
                           None if class_labels is None else class_labels.to(device), pooled_embeds=pooled)
        return training_loss(out, x0, t, eps, self.alpha_bar, cfg.prediction_type, cfg.loss_weighting,
                             cfg.min_snr_gamma)

    # ------------------------------------------------------------------ the loop

    def train(self) -> None:
        cfg = self.cfg
        self._install_signal_handlers()
        if self.acc.is_main_process:
            trim_log(self.run / "log.jsonl", self.step)
        log = open(self.run / "log.jsonl", "a") if self.acc.is_main_process else None
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.stage}", unit="step",
                   disable=not self.acc.is_main_process, dynamic_ncols=True)
        losses: list[float] = []
        t_last, samples_since = time.perf_counter(), 0
        start = time.perf_counter()
        # --time-budget-s: time steps 10..50 of this process (the first ones pay for warm-up), then fix
        # the run's length. With --warmup-steps 50 or more, no learning rate so far depended on --steps.
        probe = (self.step + 10, self.step + 50) if cfg.time_budget_s > 0 else None
        t_probe = start
        self.model.train()
        while self.step < cfg.steps and not self.stop_requested:
            lr = lr_at(self.step, cfg)
            losses += self.optimise(lr)
            self.step += 1
            samples_since += cfg.batch_size * cfg.grad_accum * self.acc.num_processes
            bar.update(1)
            if probe is not None and self.step == probe[0]:
                t_probe = time.perf_counter()
            elif probe is not None and self.step == probe[1]:
                self.fix_steps((probe[1] - probe[0]) / (time.perf_counter() - t_probe))
                bar.total = cfg.steps
                bar.refresh()

            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.perf_counter()
                record = {"step": self.step, "loss": sum(losses) / len(losses), "lr": lr,
                          "samples_per_s": samples_since / (now - t_last), "elapsed_s": now - start,
                          **self.log_extra}
                bar.set_postfix(loss=f"{record['loss']:.4f}", samples_s=f"{record['samples_per_s']:.1f}")
                if log is not None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if cfg.log_with != "none":
                    self.acc.log({k: v for k, v in record.items() if k != "step"}, step=self.step)
                losses, t_last, samples_since = [], now, 0
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()
            if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                self.sample_grid()
        if self.stop_requested:
            self.save()
            bar.write(f"stopped at step {self.step}; checkpoint saved. Continue with: "
                      f"python -m imagen.train --run {self.run} --resume")
        bar.close()
        if log is not None:
            log.close()
        self.acc.end_training()

    def optimise(self, lr: float) -> list[float]:
        """One optimizer step at learning rate `lr` (its micro-batches accumulated), then the EMA;
        returns the micro-batches' losses, for the log."""
        cfg, losses = self.cfg, []
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for k in range(cfg.grad_accum):
            with self.acc.accumulate(self.model):
                loss = self.loss(self.step * cfg.grad_accum + k)
                self.acc.backward(loss)
                if self.acc.sync_gradients and cfg.grad_clip > 0:
                    self.acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(self.acc.gather(loss.detach()[None]).mean().item())
        self.ema.update(self.acc.unwrap_model(self.model))
        return losses

    def fix_steps(self, steps_per_s: float) -> None:
        """Set cfg.steps to what `steps_per_s` fits in the rest of --time-budget-s (less 5% for the
        checkpoints and sample grids), and record it in config.json so a resumed run keeps it."""
        cfg = self.cfg
        left = cfg.time_budget_s - (time.perf_counter() - self.created)
        steps = torch.tensor([max(self.step + 1, self.step + int(0.95 * steps_per_s * left))], device=self.acc.device)
        cfg.steps = int(self.acc.gather(steps).min().item())  # every process must stop at the same step
        cfg.time_budget_s = 0.0
        if self.acc.is_main_process:
            cfg.save(self.run / "config.json")
        tqdm.write(f"--time-budget-s: {steps_per_s:.2f} steps/s and {left:.0f} s left: the run is {cfg.steps} steps")

    def save(self) -> None:
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            save_checkpoint(self.run, self.step, self.acc.unwrap_model(self.model), self.ema.state_dict(),
                            self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer,
                            {"ema_updates": self.ema.updates, "stage": self.cfg.stage})

    def preview_pipeline(self) -> ImagenPipeline:
        """The EMA weights wrapped as a one-stage pipeline, for sample grids (the pipeline samples a
        prepared copy: the EMA model itself is left as it is)."""
        cfg = self.cfg
        diffusion = DiffusionConfig(cfg.schedule, cfg.prediction_type, cfg.num_timesteps)
        is_base = cfg.stage == "base"
        config = PipelineConfig(cfg.text_encoder, cfg.max_length, base=diffusion,
                                sr=None if is_base else diffusion, defaults=Settings(sr=not is_base))
        return ImagenPipeline(self.encoder, self.ema.model if is_base else None,
                              None if is_base else self.ema.model, config, device=self.acc.device)

    @torch.no_grad()
    def sample_grid(self) -> Path | None:
        if not self.acc.is_main_process:
            return None
        pipe = self.preview_pipeline()
        if self.cfg.stage == "base":
            steps = list(pipe.generate(self.preview_prompts, seed=0))
            images = to_pil(steps[-1].x_prev)
            captions = self.preview_prompts
        else:
            idx = self.preview_index[:4]
            prompts = self.preview_captions[:4]
            low = from_uint8(self.images_64[idx])
            steps = list(pipe.super_resolve(low, prompts, seed=0))
            images = [im for pair in zip(to_pil(upsample(low, 256)), to_pil(steps[-1].x_prev)) for im in pair]
            captions = [c for p in prompts for c in (f"input: {p}", "output")]
        path = self.run / "samples" / f"step-{self.step:07d}.png"
        grid(images, columns=4, captions=captions).save(path)
        return path

    def _install_signal_handlers(self) -> None:
        def request_stop(signum: int, frame: object) -> None:
            if self.stop_requested:  # a second Ctrl-C: stop now; the last checkpoint is intact
                raise KeyboardInterrupt
            self.stop_requested = True
            tqdm.write(f"{signal.Signals(signum).name}: saving a checkpoint after this step "
                       "(press Ctrl-C again to stop at once)")
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
