"""Scoring generated images against their captions, with nothing downloaded: a small image encoder
trained on the dataset's real images (`image_encoder.py`), pure metrics (`metrics.py`), scoring one
set of images (`scorer.py`), the settings an evaluation sweeps (`sweep.py`) and its figures (`plots.py`).
The command is `python -m imagen.evaluate`."""
