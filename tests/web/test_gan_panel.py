"""The "GAN or diffusion?" panel's handlers, on a tiny checkpoint with a tiny GAN."""

import re

import gradio as gr
import pytest

from imagen.web.handlers import ImagenDemo


def test_the_gan_draws_at_once_then_diffusion_forms_step_by_step(gan_checkpoint):
    backend = ImagenDemo(gan_checkpoint, device="cpu")
    panel = backend.gan_panel
    assert panel.available and panel._gan is None  # loaded on first use, not with the page
    updates = list(panel.compare("red apple", 3.0, 3, 5, False))
    first, last = updates[0][0], updates[-1][0]
    assert 'data-model="gan"' in first and "one forward pass" in first and "waiting" in first
    assert [re.search(r"step (\d) of 3", u[0]).group(1) for u in updates[1:-1]] == ["1", "2", "3"]
    assert last.count("<img") == 2 and updates[-1][2] == 5
    assert re.search(r"\*\*GAN: \d+ ms, diffusion: [\d.]+ s\*\*", updates[-1][1])


def test_the_walk_goes_from_the_seed_to_the_next_and_checks_its_inputs(gan_checkpoint):
    panel = ImagenDemo(gan_checkpoint, device="cpu").gan_panel
    start, middle = panel.walk("sun", 4, 0.0), panel.walk("sun", 4, 0.5)
    assert "seed 4 → 5, t = 0.00" in start and "t = 0.50" in middle
    uri = lambda html: re.search(r'src="([^"]+)"', html).group(1)  # noqa: E731
    assert uri(start) != uri(middle)
    with pytest.raises(gr.Error, match="t must be a number from 0 to 1"):
        panel.walk("sun", 4, 2)
    with pytest.raises(gr.Error, match="empty"):
        panel.walk("  ", 4, 0.5)


def test_a_checkpoint_without_a_gan_hides_the_panel_and_says_so_if_called(tiny_checkpoint):
    panel = ImagenDemo(tiny_checkpoint, device="cpu").gan_panel
    assert not panel.available
    with pytest.raises(gr.Error, match="has no GAN"):
        next(panel.compare("red apple", 3.0, 3, 5, False))
