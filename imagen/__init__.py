"""An educational Imagen: a frozen text encoder, a 64 px text-conditional diffusion U-Net and a
64 -> 256 px super-resolution diffusion U-Net, small enough to sample in seconds on a CPU.

    from imagen import ImagenPipeline
    pipe = ImagenPipeline.from_pretrained("checkpoints/emoji")
    image = pipe("red apple, twemoji style", seed=0).images_256[0]
"""

from __future__ import annotations

__all__ = ["ImagenPipeline", "Settings", "Step"]


def __getattr__(name: str):
    # Lazy, so `python -m imagen.train --help` does not pay for importing diffusers twice over.
    if name == "ImagenPipeline":
        from .pipeline import ImagenPipeline
        return ImagenPipeline
    if name == "Settings":
        from .config import Settings
        return Settings
    if name == "Step":
        from .samplers import Step
        return Step
    raise AttributeError(name)
