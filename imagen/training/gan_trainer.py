"""Training the GAN beside diffusion (`python -m imagen.train --stage gan`), with every habit of the
diffusion stages: the same data and captions (caption variety included), the run folder, log.jsonl,
sample grids, checkpoints that survive a kill and a bit-identical --resume, Accelerate and
--time-budget-s. Only the model and one optimizer step differ (`build` and `optimise`):

    D step: real drawings with their captions -> real; generated ones -> fake; real drawings with
            another sample's caption -> fake (matching-aware); R1 on the real ones every R1_EVERY steps
    G step: generated drawings -> real (non-saturating), plus an optional contrastive term
    then the EMA of the generator, which is what is sampled and exported.

Generator and discriminator share one AdamW (two parameter groups): each half of the step freezes
the other network, so only its own parameters get gradients and only they move.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..gan.discriminator import Discriminator, pyramid
from ..gan.generator import GAN_PRESETS, Generator
from ..gan.losses import diff_augment, discriminator_loss, generator_loss, r1_penalty, rotated
from ..images import from_uint8, grid, to_pil
from ..text_encoder import pooled_sentence_embedding
from .ema import EMA
from .trainer import Trainer

R1_EVERY = 4  # lazy R1 (StyleGAN2): every 4th step, scaled by 4
GAN_BETAS = (0.0, 0.99)  # StyleGAN2's Adam betas


class GanPair(nn.Module):
    """The generator and the discriminator as one module: one state dict, one checkpoint."""

    def __init__(self, generator: Generator, discriminator: Discriminator):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator


def build_gan(preset: str, text_dim: int, text: str, kernels: int) -> GanPair:
    if preset not in GAN_PRESETS:
        raise ValueError(f"unknown gan preset {preset!r}; expected one of {sorted(GAN_PRESETS)}")
    config = GAN_PRESETS[preset]
    config = type(config)(**{**config.__dict__, "text_dim": text_dim, "text": text, "kernels": kernels})
    d_channels = (8, 8, 8, 8, 8) if preset == "tiny" else (32, 64, 128, 192, 192)
    return GanPair(Generator(config), Discriminator(d_channels, text_dim, text=text != "none"))


class GanTrainer(Trainer):
    def build(self, resume: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, EMA]:
        cfg = self.cfg
        if cfg.init_from:
            raise ValueError("--init-from is for the diffusion stages; a GAN run starts from random weights")
        pair = build_gan(cfg.preset, self.encoder.dim, cfg.gan_text, cfg.gan_kernels)
        optimizer = torch.optim.AdamW([{"params": pair.generator.parameters()},
                                       {"params": pair.discriminator.parameters()}],
                                      lr=cfg.lr, betas=GAN_BETAS, weight_decay=0.0)
        (self.run / "gan_config.json").write_text(json.dumps(pair.generator.config_dict(), indent=2))
        self.judge = self._contrastive_model() if cfg.contrastive_weight > 0 else None
        return pair, optimizer, EMA(pair.generator, cfg.ema_decay)

    def _contrastive_model(self) -> torch.nn.Module:
        """An image-text model trained on the data for the contrastive loss: the evaluation's judge
        architecture with another seed, so the score the GAN is judged by is never the one it trained on."""
        from ..data import default_cache_dir, load_dataset
        from ..evaluation.image_encoder import DEFAULT_CONFIG, load_or_train
        ds = load_dataset(self.cfg.data, self.cfg.cache_dir or default_cache_dir())
        model, _ = load_or_train(ds, self.encoder, replace(DEFAULT_CONFIG, seed=DEFAULT_CONFIG.seed + 1),
                                 device=self.acc.device)
        return model.eval().requires_grad_(False)

    def optimise(self, lr: float) -> list[float]:
        cfg, device = self.cfg, self.acc.device
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        pair = self.acc.unwrap_model(self.model)
        gen, disc = pair.generator, pair.discriminator
        idx = self.batches.indices(self.step)
        g = self.batches.generator(self.step)
        real, _, embeds, mask = self.captioned(idx, g, from_uint8(self.images_64[idx]))
        z_d, z_g = (torch.randn(len(idx), gen.config.z_dim, generator=g) for _ in range(2))
        real, embeds, mask, z_d, z_g = (v.to(device) for v in (real, embeds, mask, z_d, z_g))

        # 1. the discriminator
        gen.requires_grad_(False)
        disc.requires_grad_(True)
        with torch.no_grad():
            fake = gen(z_d, embeds, mask)
        real_in = diff_augment(pyramid(real), g)
        lazy_r1 = cfg.r1_gamma > 0 and self.step % R1_EVERY == 0
        if lazy_r1:
            real_in = [x.detach().requires_grad_() for x in real_in]
        h_real = disc.features(real_in)
        d_real = disc.judge(h_real, embeds, mask)
        d_fake = disc(diff_augment(fake, g), embeds, mask)
        mismatched = differs = None
        if cfg.matching_weight > 0 and cfg.gan_text != "none":
            other, other_mask, differs = rotated(embeds, mask)
            mismatched = disc.judge(h_real, other, other_mask)  # the same drawings under other captions
        loss_d = discriminator_loss(d_real, d_fake, mismatched, differs, cfg.matching_weight)
        if lazy_r1:
            loss_d = loss_d + cfg.r1_gamma / 2 * r1_penalty(d_real, real_in) * R1_EVERY
        self._step(loss_d, disc)

        # 2. the generator
        disc.requires_grad_(False)
        gen.requires_grad_(True)
        fake = gen(z_g, embeds, mask)
        loss_g = generator_loss(disc(diff_augment(fake, g), embeds, mask))
        if self.judge is not None:
            from ..evaluation.image_encoder import contrastive_loss
            _, image_embeds = self.judge(fake[-1].clamp(-1, 1))
            sentences = pooled_sentence_embedding(embeds, mask)
            loss_g = loss_g + cfg.contrastive_weight * contrastive_loss(
                image_embeds, self.judge.embed_text(sentences), self.judge.logit_scale, sentences)
        self._step(loss_g, gen)
        disc.requires_grad_(True)
        self.ema.update(gen)
        self.log_extra = {"d_loss": loss_d.item(), "g_loss": loss_g.item(),
                          "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}
        return [loss_d.item() + loss_g.item()]

    def _step(self, loss: torch.Tensor, module: nn.Module) -> None:
        self.acc.backward(loss)
        if self.cfg.grad_clip > 0:
            self.acc.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
        self.optimizer.step()  # only `module` has gradients: the other network's parameters are skipped
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def sample_grid(self) -> Path | None:
        if not self.acc.is_main_process:
            return None
        gen = self.ema.model
        text = self.encoder.encode(self.preview_prompts, use_cache=False)
        z = torch.cat([torch.randn(1, gen.config.z_dim, generator=torch.Generator().manual_seed(i))
                       for i in range(len(self.preview_prompts))])
        images = gen(z.to(self.acc.device), text.text_embeds.to(self.acc.device),
                     text.text_mask.to(self.acc.device))[-1].clamp(-1, 1)
        path = self.run / "samples" / f"step-{self.step:07d}.png"
        grid(to_pil(images.float().cpu()), columns=4, captions=self.preview_prompts).save(path)
        return path
