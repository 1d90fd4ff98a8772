"""Training a stage of the cascade: the loop (`trainer.py`), its settings (`config.py`), checkpoints
that survive a kill (`checkpointing.py`), the EMA of the weights (`ema.py`), deepening a trained
U-Net (`growth.py`) and self-conditioning's training side. The command is `python -m imagen.train`."""
