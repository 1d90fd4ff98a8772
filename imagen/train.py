"""Train one stage of the cascade on captioned images.

    python -m imagen.train --stage base --data emoji --run runs/base
    python -m imagen.train --stage sr   --data emoji --run runs/sr
    python -m imagen.train --run runs/base --resume          # after Ctrl-C, a crash or a reboot
    accelerate launch -m imagen.train ...                    # several GPUs or machines

The loop is imagen/training/trainer.py; the flags are imagen/training/config.py.
"""

from __future__ import annotations

import sys

from .training.config import TrainConfig, config_from_args
from .training.gan_trainer import GanTrainer
from .training.trainer import Trainer


def make_trainer(cfg: TrainConfig, resume: bool = False) -> Trainer:
    """The trainer for cfg's stage: the GAN's, or the diffusion stages'."""
    return (GanTrainer if cfg.stage == "gan" else Trainer)(cfg, resume)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, resume = config_from_args(argv)
        trainer = make_trainer(cfg, resume)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
