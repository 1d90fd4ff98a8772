"""The page's "GAN or diffusion?" panel: the same caption and seed drawn by the checkpoint's GAN in one
forward pass (with its time) beside diffusion's 64 px stage forming over its steps (with its time),
and a slider that walks the GAN's noise from the seed to the next one (a latent interpolation: a
GAN's smooth latent space is its strength). The GAN loads on the panel's first use, so the page's
default path pays nothing for it; a checkpoint without one hides the panel."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..gan.sampler import GAN_DIR
from .inputs import MAX_SEED, Limits, check_prompt, number, pick_seed, user_error, whole_number
from .live_view import Frame, image_uri

if TYPE_CHECKING:
    from PIL import Image

    from ..gan.sampler import GanSampler
    from .serving import SharedPipeline


def has_gan(path: Path) -> bool:
    return (Path(path) / GAN_DIR / "config.json").is_file()


def panel_html(gan_image: Image.Image | None, gan_ms: float | None, frame: Frame | None, diffusion_s: float | None,
               note: str = "") -> str:
    """Two columns: the GAN's picture and diffusion's (its x0 at the current step), each with its time."""
    def cell(kind: str, title: str, uri: str | None, time_text: str) -> str:
        image = (f'<img class="pixelated gan-img" src="{uri}" alt="{kind}"/>' if uri
                 else '<div class="live-img empty"></div>')
        return (f'<figure class="gan-col" data-model="{kind}"><div class="name">{html.escape(title)}</div>{image}'
                f'<figcaption>{html.escape(time_text)}</figcaption></figure>')
    gan_time = f"one forward pass: {gan_ms:.0f} ms" if gan_ms is not None else "waiting"
    if frame is None:
        diffusion_time = "waiting"
    else:
        diffusion_time = f"step {frame.index + 1} of {frame.total}: {diffusion_s:.2f} s so far"
    cells = (cell("gan", "GAN", image_uri(gan_image) if gan_image is not None else None, gan_time)
             + cell("diffusion", "diffusion (64 px stage)", frame.x0_pred if frame else None, diffusion_time))
    return f'<div class="samplers"><div class="sampler-columns">{cells}</div>{html.escape(note)}</div>'


class GanPanel:
    def __init__(self, path: Path, pipeline: SharedPipeline, limits: Limits, device: str = "auto"):
        self.path, self.pipeline, self.limits, self.device = Path(path), pipeline, limits, device
        self.available = has_gan(self.path)
        self._gan: GanSampler | None = None
        self._lock = threading.Lock()

    def gan(self) -> GanSampler:
        """The checkpoint's GAN, loaded once, on first use (sharing the diffusion pipeline's text encoder)."""
        if self._gan is None:
            with self._lock:
                if self._gan is None:
                    from ..config import CheckpointError
                    from ..gan.sampler import GanSampler
                    try:
                        self._gan = GanSampler.from_pretrained(self.path, device=self.device,
                                                               text_encoder=self.pipeline.get().text_encoder)
                    except CheckpointError as e:
                        raise user_error(str(e), title="No GAN") from e
        return self._gan

    def compare(self, prompt: object, guidance_scale: object, steps: object, seed: object,
                randomize_seed: object) -> Iterator[tuple[str, str, int]]:
        """The GAN's picture at once, then diffusion's forming step by step; yields (panel, status, seed)."""
        prompt, _ = check_prompt(prompt)
        guidance_scale = number("guidance_scale", guidance_scale, 0, self.limits.max_guidance)
        steps = whole_number("steps", steps, 1, self.limits.max_steps)
        seed = pick_seed(seed, randomize_seed)
        gan = self.gan()
        start = time.perf_counter()
        gan_image = gan([prompt], seed=seed)[0]
        gan_ms = (time.perf_counter() - start) * 1000
        yield panel_html(gan_image, gan_ms, None, None), f"GAN drew it in {gan_ms:.0f} ms; diffusion starts…", seed
        pipe = self.pipeline.get()
        start, frame = time.perf_counter(), None
        for step in pipe.generate(prompt, seed=seed, guidance_scale=guidance_scale, steps=steps, sr=False):
            frame = Frame.of(step)
            yield panel_html(gan_image, gan_ms, frame, time.perf_counter() - start), "", seed
        seconds = time.perf_counter() - start
        ratio = seconds * 1000 / max(gan_ms, 1e-3)
        status = (f"**GAN: {gan_ms:.0f} ms, diffusion: {seconds:.2f} s** ({ratio:.0f} times as long), seed {seed}. "
                  f"The GAN maps noise to a picture in one pass; diffusion removes noise over {steps} steps. "
                  "Drag the slider below to walk the GAN's noise from this seed to the next.")
        yield panel_html(gan_image, gan_ms, frame, seconds), status, seed

    def walk(self, prompt: object, seed: object, t: object) -> str:
        """The GAN's picture at t in [0, 1] on the way from `seed`'s noise to the next seed's."""
        prompt, _ = check_prompt(prompt)
        seed = whole_number("seed", seed, 0, MAX_SEED - 1)
        t = number("t", t, 0, 1)
        start = time.perf_counter()
        image = self.gan().interpolate(prompt, seed, seed + 1, t)
        ms = (time.perf_counter() - start) * 1000
        return (f'<figure class="gan-walk"><img class="pixelated gan-img" src="{image_uri(image)}" alt="walk"/>'
                f"<figcaption>seed {seed} → {seed + 1}, t = {t:.2f} · {ms:.0f} ms</figcaption></figure>")
