"""The trained GAN everywhere diffusion is used: saved beside the diffusion stages, loaded, drawn
from the CLI and the Python API, and walked between two seeds."""

import numpy as np
import pytest
import torch
from PIL import Image

from imagen.config import CheckpointError
from imagen.gan.generator import GAN_PRESETS, Generator
from imagen.gan.sampler import GanSampler, noise, save_gan, slerp
from imagen.generate import main as generate_main


def test_a_saved_gan_loads_and_draws_each_image_from_its_own_seed(gan_checkpoint):
    gan = GanSampler.from_pretrained(gan_checkpoint, device="cpu")
    both = gan(["red apple", "sun"], seed=3)
    assert [im.size for im in both] == [(64, 64), (64, 64)]
    alone = gan(["sun"], seed=4)[0]  # image 1 of the call above came from seed 3 + 1
    # the same noise; only float rounding differs between batch sizes (at most one grey level)
    assert np.abs(np.asarray(both[1], int) - np.asarray(alone, int)).max() <= 1
    assert not np.array_equal(np.asarray(gan(["sun"], seed=5)[0]), np.asarray(alone))


def test_the_walk_between_two_seeds_starts_and_ends_at_their_drawings(gan_checkpoint):
    gan = GanSampler.from_pretrained(gan_checkpoint, device="cpu")
    start, end = gan(["sun"], seed=1)[0], gan(["sun"], seed=2)[0]
    diff = lambda a, b: np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()  # noqa: E731
    assert diff(gan.interpolate("sun", 1, 2, 0.0), start) < 1
    assert diff(gan.interpolate("sun", 1, 2, 1.0), end) < 1
    middle = gan.interpolate("sun", 1, 2, 0.5)
    assert diff(middle, start) > 0 and diff(middle, end) > 0
    a, b = noise(16, 1, 1), noise(16, 2, 1)
    assert torch.allclose(slerp(a, b, 0.5).norm(), (a.norm() + b.norm()) / 2, rtol=0.1)  # stays near the sphere
    with pytest.raises(ValueError, match="t must be in"):
        gan.interpolate("sun", 1, 2, 1.5)


def test_a_checkpoint_without_a_gan_or_with_a_broken_one_says_so(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="has no GAN"):
        GanSampler.from_pretrained(tiny_checkpoint, device="cpu")
    save_gan(Generator(GAN_PRESETS["tiny"]), tiny_checkpoint)
    (tiny_checkpoint / "gan" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="could not be loaded"):
        GanSampler.from_pretrained(tiny_checkpoint, device="cpu")


def test_generate_gan_writes_64_px_images_and_their_captions(gan_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate_main(["--gan", "red apple", "sun", "cat face", "--checkpoint", str(gan_checkpoint),
                          "--out", str(out), "--batch-size", "2", "--seed", "7", "--device", "cpu"]) == 0
    assert (out / "captions.txt").read_text().splitlines() == ["red apple", "sun", "cat face"]
    images = [Image.open(out / "64" / f"{i:04d}.png") for i in range(3)]
    assert all(im.size == (64, 64) for im in images) and not (out / "256").exists()
    gan = GanSampler.from_pretrained(gan_checkpoint, device="cpu")
    alone = gan(["cat face"], seed=9)[0]  # seed + i, rounding aside
    assert np.abs(np.asarray(images[2], int) - np.asarray(alone, int)).max() <= 1
    assert generate_main(["--gan", "sun", "--steps", "10", "--checkpoint", str(gan_checkpoint),
                          "--out", str(out)]) == 2
    assert "--steps set diffusion's sampling" in capsys.readouterr().err
