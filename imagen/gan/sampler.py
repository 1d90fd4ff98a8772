"""The trained GAN, ready to draw: one forward pass per caption, beside the diffusion cascade.

    gan = GanSampler.from_pretrained("checkpoints/emoji")        # checkpoints/emoji/gan/
    images = gan(["red apple", "cat face"], seed=0)              # PIL images, 64 px; image i from seed + i
    gan.interpolate("red apple", 0, 1, 0.5)                      # halfway between two seeds' noise

A checkpoint keeps the GAN in its own folder beside the diffusion stages, with the same text
encoder (named in the checkpoint's pipeline.json):

    checkpoints/<name>/gan/config.json        the generator's GeneratorConfig
    checkpoints/<name>/gan/model.safetensors  the EMA generator's weights (fp16 in a release)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ..config import CONFIG_NAME, CheckpointError, PipelineConfig
from ..device import resolve_device
from ..images import to_pil
from ..text_encoder import TextEncoder
from .generator import Generator, GeneratorConfig

GAN_DIR = "gan"
WEIGHTS = "model.safetensors"


def noise(z_dim: int, seed: int, count: int) -> torch.Tensor:
    """(count, z_dim): row i drawn from seed + i alone, so an image never depends on its batch."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(seed + i)) for i in range(count)])


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between two noise vectors: Gaussian noise lives near a sphere, and
    the straight line between two points of it cuts through the low-norm inside."""
    omega = torch.arccos((torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1))
                         .sum(-1).clamp(-1 + 1e-7, 1 - 1e-7))[..., None]
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class GanSampler:
    def __init__(self, generator: Generator, text_encoder: TextEncoder, device: str | torch.device = "auto"):
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(self.device)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "auto",
                        text_encoder: TextEncoder | None = None) -> GanSampler:
        path = Path(path)
        folder = path / GAN_DIR
        if not (folder / "config.json").is_file() or not (folder / WEIGHTS).is_file():
            raise CheckpointError(f"{path} has no GAN: {folder} needs config.json and {WEIGHTS} "
                                  "(train one with python -m imagen.train --stage gan, then python -m imagen.export)")
        pipeline = PipelineConfig.load(path / CONFIG_NAME)
        try:
            config = GeneratorConfig.from_dict(json.loads((folder / "config.json").read_text()))
            generator = Generator(config)
            generator.load_state_dict({k: v.float() for k, v in load_file(folder / WEIGHTS).items()})
        except Exception as e:  # a damaged file: safetensors, json and torch raise many kinds
            raise CheckpointError(f"the GAN in {folder} could not be loaded: {type(e).__name__}: {e}") from e
        if text_encoder is None:
            text_encoder = TextEncoder(pipeline.text_encoder, pipeline.max_length)
        if text_encoder.dim != config.text_dim:
            raise CheckpointError(f"the GAN in {folder} reads {config.text_dim}-d text, the text encoder gives "
                                  f"{text_encoder.dim}-d")
        return cls(generator, text_encoder, device)

    @torch.no_grad()
    def draw(self, prompts: list[str], z: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) in [-1, 1] for the prompts and noise z (B, z_dim)."""
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError("give a list of non-empty prompts, e.g. ['red apple']")
        text = self.text_encoder.encode(prompts)
        images = self.generator(z.to(self.device), text.text_embeds.to(self.device), text.text_mask.to(self.device))
        return images[-1].clamp(-1, 1).float().cpu()

    def __call__(self, prompts: str | list[str], seed: int = 0) -> list[Image.Image]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return to_pil(self.draw(prompts, noise(self.generator.config.z_dim, seed, len(prompts))))

    def interpolate(self, prompt: str, seed_a: int, seed_b: int, t: float) -> Image.Image:
        """The drawing at t in [0, 1] on the way from seed_a's noise to seed_b's, for one caption."""
        if not 0 <= t <= 1:
            raise ValueError(f"t must be in [0, 1], got {t}")
        z_dim = self.generator.config.z_dim
        z = slerp(noise(z_dim, seed_a, 1), noise(z_dim, seed_b, 1), t)
        return to_pil(self.draw([prompt], z))[0]


def save_gan(generator: Generator, checkpoint: Path, half: bool = True) -> Path:
    """Write checkpoint/gan/ (config and weights) into a temporary sibling, then swap it into place."""
    folder = Path(checkpoint) / GAN_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".gan.", suffix=".tmp", dir=checkpoint))
    try:
        (tmp / "config.json").write_text(json.dumps(asdict(generator.config), indent=2) + "\n")
        state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in generator.state_dict().items()}
        save_file(state, tmp / WEIGHTS)
        tmp.chmod(0o755)
        old = folder.with_name(f".{GAN_DIR}.old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
