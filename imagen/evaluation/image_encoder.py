"""A small image encoder trained to agree with the frozen text encoder: the judge of evaluation.

AttnGAN (Xu et al. 2018) measures text-image alignment with DAMSM, an image encoder trained to
match a text encoder. We do the same without any download: a small CNN maps a 64 px image to the
text encoder's sentence-embedding space (through a learned linear map on the text side), trained
with a symmetric contrastive loss (InfoNCE, as in CLIP and DAMSM) on the dataset's real images
against the sentence embeddings of all their captions. Its pooled features before the projection
are the feature space of the Fréchet distance.

By default it trains on every image: a judge that has never seen an apple emoji cannot tell
whether one was drawn, and the diffusion model it judges saw every image too. Augmentations
(shifts, scaling, blur, noise) make it judge what is drawn rather than exact pixels, since
generated images are never placed or rendered exactly as the real ones. `holdout` keeps a share
of the images out of its training for datasets where that matters. The trained encoder is
cached beside the dataset, keyed by text encoder, split, settings and training precision:

    cache/<dataset>/image-encoder-<key>.safetensors   weights
    cache/<dataset>/image-encoder-<key>.json          config, text encoder, training record

It trains in bfloat16 autocast where the device has fast bfloat16 kernels and in float32 elsewhere
(an AVX2-only CPU emulates bfloat16 at about 20 times float32's cost). The two precisions give two
different judges: their scores are comparable within one judge only, so every result names it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from ..data.colours import recolour
from ..data.prepared import PreparedDataset
from ..data.text_cache import cached_text_embeddings
from ..device import fast_bfloat16
from ..files import atomic_write, atomic_write_text
from ..images import from_uint8
from ..text_encoder import TextEncoder, pooled_sentence_embedding


@dataclass(frozen=True)
class ImageEncoderConfig:
    channels: tuple[int, ...] = (32, 64, 128, 256)  # one conv level each; 64 -> 32 -> 16 -> 8 -> 4 px
    text_dim: int = 384  # set to the text encoder's width before training
    holdout: float = 0.0  # share of images the encoder never sees
    split_seed: int = 0
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    max_shift: float = 0.15  # augmentation: random shift and scale, as a share of the image side
    blur_prob: float = 0.3  # augmentation: share of images blurred (halved and upsampled)
    noise_prob: float = 0.3  # augmentation: share of images with Gaussian noise of std up to 0.1
    seed: int = 0
    # A colour-blind judge sees every image in grey, and trains on images whose hue is turned at
    # random first (so that how light a hue greys does not stand in for it): only shape can score.
    colour_blind: bool = False


DEFAULT_CONFIG = ImageEncoderConfig()
COLOUR_BLIND_CONFIG = ImageEncoderConfig(colour_blind=True)


def training_precision(device: torch.device | str) -> str:
    """"bf16" where the device has fast bfloat16 kernels, else "fp32" (see the module docstring)."""
    return "bf16" if fast_bfloat16(torch.device(device)) else "fp32"


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out) image indices; held_out is in random order, so its first k are a random k."""
    perm = np.random.default_rng(seed).permutation(n)
    k = min(max(round(n * fraction), 1), n - 1) if fraction > 0 else 0
    return np.sort(perm[k:]), perm[:k]


def caption_embeddings(ds: PreparedDataset, text_encoder: TextEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence embeddings of every caption variant (M, D), and offsets (N + 1,): image i's variants
    are rows offsets[i] .. offsets[i + 1] - 1, its main caption row offsets[i]. Pooled from the
    dataset's token-embedding cache, which training already built."""
    cache = cached_text_embeddings(ds, text_encoder)
    sentences = torch.cat([pooled_sentence_embedding(cache.text_embeds[i:i + 2048], cache.text_mask[i:i + 2048])
                           for i in range(0, len(cache.text_embeds), 2048)])
    return sentences, cache.offsets.long()


class ImageEncoder(nn.Module):
    def __init__(self, config: ImageEncoderConfig):
        super().__init__()
        self.config = config
        c = config.channels
        layers: list[nn.Module] = [*_conv(3, c[0], stride=2)]  # (B, c0, 32, 32): content, not texture
        for i, width in enumerate(c):
            layers += _conv(c[max(i - 1, 0)], width, stride=1 if i == 0 else 2)
            if i > 0:
                layers += _conv(width, width, stride=1)
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, c[-1])
        self.proj = nn.Linear(c[-1], config.text_dim)
        # A learned map on the text side separates captions whose sentence embeddings are close
        # ("... dark skin tone" and "... medium-dark skin tone"). It starts as the identity.
        self.text_proj = nn.Linear(config.text_dim, config.text_dim)
        nn.init.eye_(self.text_proj.weight)
        nn.init.zeros_(self.text_proj.bias)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    @property
    def feature_dim(self) -> int:
        return self.config.channels[-1]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 64, 64) in [-1, 1] -> pooled features (B, C) and unit-norm embeddings (B, text_dim)."""
        if self.config.colour_blind:
            images = grey(images)
        features = self.body(images)
        return features, F.normalize(self.proj(features).float(), dim=-1)

    def embed_text(self, sentences: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings (M, text_dim) -> unit-norm caption embeddings in the shared space."""
        return F.normalize(self.text_proj(sentences.to(self.text_proj.weight.device).float()), dim=-1)

    @torch.no_grad()
    def encode_text(self, sentences: torch.Tensor) -> torch.Tensor:
        """embed_text for any number of captions, in eval mode, on the CPU."""
        return self.embed_text(sentences).cpu()

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and embeddings of any number of 64 px images (B, 3, 64, 64) in [-1, 1], in eval mode."""
        if images.shape[1:] != (3, 64, 64):
            raise ValueError(f"the image encoder takes (B, 3, 64, 64) images, got {tuple(images.shape)}")
        self.eval()
        device = self.proj.weight.device
        parts = [self(images[i:i + batch_size].to(device).float()) for i in range(0, len(images), batch_size)]
        return torch.cat([p[0] for p in parts]).float().cpu(), torch.cat([p[1] for p in parts]).cpu()


def _conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def contrastive_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor,
                     sentences: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (CLIP, Radford et al. 2021; DAMSM, Xu et al. 2018). Two
    images with the same caption (the same `sentences` row, or text embedding) are both right
    answers, not each other's negatives."""
    logits = logit_scale.exp().clamp(max=100) * image_embeds @ text_embeds.T  # (B, B)
    key = F.normalize((text_embeds if sentences is None else sentences).float(), dim=-1)
    same = (key @ key.T > 0.9999).float()
    targets = same / same.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> the same in grey (ITU-R 601 luma in all three channels)."""
    luma = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    return luma[:, None].expand_as(images)


def random_hue(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Turn each image's hue by a random angle (the colour-blind judge's augmentation)."""
    return recolour(images, torch.rand(images.shape[0], generator=generator) * 360)


def random_shift(images: torch.Tensor, max_shift: float, generator: torch.Generator) -> torch.Tensor:
    """Shift and rescale each image a little (edge pixels repeat): the encoder should judge content,
    not exact placement, since generated images are not placed exactly as the real ones."""
    b = images.shape[0]
    scale = 1 + (torch.rand(b, generator=generator) * 2 - 1) * max_shift
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * 2 * max_shift  # grid units span 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale, scale, shift
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


def degrade(images: torch.Tensor, blur_prob: float, noise_prob: float, generator: torch.Generator) -> torch.Tensor:
    """Blur some images (halve and upsample) and add Gaussian noise to others: generated images are
    softer and noisier than the renders, and the judge should look past that to what is drawn."""
    b = images.shape[0]
    blurred = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="bilinear", align_corners=False)
    pick = (torch.rand(b, generator=generator) < blur_prob).view(-1, 1, 1, 1)
    images = torch.where(pick, blurred, images)
    std = torch.rand(b, generator=generator) * 0.1 * (torch.rand(b, generator=generator) < noise_prob)
    return images + std.view(-1, 1, 1, 1) * torch.randn(images.shape, generator=generator)


def lr_factor(step: int, total: int, warmup_share: float = 0.05) -> float:
    """Linear warmup over the first 5% of steps, then cosine decay to zero."""
    warmup = max(int(total * warmup_share), 1)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0)))


def train_image_encoder(images_64: np.ndarray, sentences: torch.Tensor, offsets: torch.Tensor,
                        train_index: np.ndarray, config: ImageEncoderConfig,
                        device: torch.device | str = "cpu", progress: bool = True,
                        precision: str | None = None) -> tuple[ImageEncoder, dict]:
    """Train on the images `train_index`, each step pairing an image with one of its caption
    variants at random, in `precision` ("bf16" or "fp32"; by default what the device runs fast).
    Returns the encoder and a record (seconds, final loss, precision)."""
    device = torch.device(device)
    precision = precision or training_precision(device)
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', not {precision!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ImageEncoder(config).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    images = torch.from_numpy(np.ascontiguousarray(images_64[np.sort(train_index)]))  # (N, 64, 64, 3) uint8
    index = torch.from_numpy(np.sort(train_index)).long()
    batch = min(config.batch_size, len(index))
    per_epoch = len(index) // batch
    total = per_epoch * config.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total))
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    model.train()
    start, losses = time.time(), []
    bar = tqdm(total=total, desc="training the image encoder", unit="step", disable=not progress)
    for _ in range(config.epochs):
        order = torch.randperm(len(index), generator=generator)
        for b in range(per_epoch):
            pick = order[b * batch:(b + 1) * batch]
            x = from_uint8(images[pick])
            if config.colour_blind:
                x = random_hue(x, generator)
            x = random_shift(x, config.max_shift, generator)
            x = degrade(x, config.blur_prob, config.noise_prob, generator).to(device)
            counts = offsets[index[pick] + 1] - offsets[index[pick]]
            rows = offsets[index[pick]] + (torch.rand(len(pick), generator=generator) * counts).long()
            with amp:
                _, image_embeds = model(x)
            loss = contrastive_loss(image_embeds.float(), model.embed_text(sentences[rows]), model.logit_scale,
                                    sentences[rows].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-per_epoch:]):.3f}")
    bar.close()
    model.eval()
    return model, {"train_seconds": round(time.time() - start, 1), "final_loss": float(np.mean(losses[-per_epoch:])),
                   "train_images": len(index), "steps": total, "precision": precision}


def cache_paths(ds: PreparedDataset, text_encoder: TextEncoder, config: ImageEncoderConfig,
                precision: str = "bf16") -> tuple[Path, Path]:
    settings = asdict(config)
    if not config.colour_blind:  # judges from before the option keep their key
        del settings["colour_blind"]
    key = {"config": settings, "text_encoder": text_encoder.name, "max_length": text_encoder.max_length,
           "images": len(ds)}
    if precision != "bf16":  # bf16 judges keep the key they had before precision was a choice
        key["precision"] = precision
    key = json.dumps(key, sort_keys=True)
    stem = f"image-encoder-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    return Path(ds.root) / f"{stem}.safetensors", Path(ds.root) / f"{stem}.json"


def load_or_train(ds: PreparedDataset, text_encoder: TextEncoder, config: ImageEncoderConfig | None = None,
                  device: torch.device | str = "cpu", progress: bool = True) -> tuple[ImageEncoder, dict]:
    """The cached encoder for this dataset, text encoder, config and the precision the device trains
    in fast, trained first if there is none. Returns it with its record (config, text encoder,
    training time, precision)."""
    config = replace(config or DEFAULT_CONFIG, text_dim=text_encoder.dim)
    precision = training_precision(device)
    weights, record_path = cache_paths(ds, text_encoder, config, precision)
    if weights.is_file() and record_path.is_file():
        model = ImageEncoder(config)
        model.load_state_dict(load_file(weights))
        record = {"precision": "bf16", **json.loads(record_path.read_text())}  # records before the choice: bf16
        return model.to(device).eval(), record
    sentences, offsets = caption_embeddings(ds, text_encoder)
    train_index, _ = holdout_split(len(ds), config.holdout, config.split_seed)
    model, record = train_image_encoder(ds.images_64, sentences, offsets, train_index, config, device, progress,
                                        precision)
    record = json.loads(json.dumps({"config": asdict(config), "text_encoder": text_encoder.name,
                                    "max_length": text_encoder.max_length, **record}))  # as a reload will see it
    # Weights first, the record last: a record on disk means the weights beside it are complete.
    state = {k: v.contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, tmp))
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return model, record
