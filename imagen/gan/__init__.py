"""A GigaGAN-style text-to-image GAN at 64 px beside the diffusion cascade, on the same frozen text
encoder and data: a generator that draws in one forward pass (`generator.py`), a multi-scale,
text-conditioned discriminator (`discriminator.py`) and the losses they are trained with
(`losses.py`). Training is `python -m imagen.train --stage gan`."""
