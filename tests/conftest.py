"""Fixtures shared by every test: the text encoder, tiny random pipelines and a folder of shapes (tiny.py)."""

from __future__ import annotations

import pytest
import torch

from imagen.pipeline import ImagenPipeline
from imagen.text_encoder import TextEncoder

from .tiny import make_shapes_folder, make_tiny_pipeline

# Tiny models gain nothing from a second thread, and on a busy machine two threads per process
# oversubscribe the cores badly (40x slower seen here while training ran beside the tests).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def text_encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture
def tiny_pipeline(text_encoder: TextEncoder) -> ImagenPipeline:
    return make_tiny_pipeline(text_encoder)


@pytest.fixture
def tiny_checkpoint(tmp_path, text_encoder):
    """A tiny pipeline saved as a checkpoint folder."""
    path = tmp_path / "tiny"
    make_tiny_pipeline(text_encoder).save_pretrained(path)
    return path


@pytest.fixture
def shapes_folder(tmp_path):
    return make_shapes_folder(tmp_path / "shapes")


@pytest.fixture
def gan_checkpoint(tiny_checkpoint):
    """The tiny checkpoint with a tiny, untrained GAN beside its diffusion stages."""
    from imagen.gan.generator import GAN_PRESETS, Generator
    from imagen.gan.sampler import save_gan
    torch.manual_seed(0)
    save_gan(Generator(GAN_PRESETS["tiny"]), tiny_checkpoint)
    return tiny_checkpoint
