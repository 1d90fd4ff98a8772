"""The Pokemon dataset, built offline from the installed `pokemon` package."""

import sys

import numpy as np
import pytest

from imagen.data import load_dataset
from imagen.data.pokemon import caption, load_pokemon


def test_the_first_artworks_build_with_captions_from_name_types_and_measured_colours(tmp_path):
    ds = load_pokemon(tmp_path, max_items=6)
    assert len(ds) == 6 and ds.images_64.shape == (6, 64, 64, 3)
    assert ds.captions[0][1] == "Bulbasaur" and ds.captions[3][1] == "Charmander"
    assert ds.captions[0][0].startswith("a drawing of a green") and "grass and poison type" in ds.captions[0][0]
    assert "Charmander, fire type" in ds.captions[3][0] and "orange" in ds.captions[3][0]
    corners = np.asarray(ds.images_64)[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners > 240).all()  # padded on white, not cropped
    assert load_pokemon(tmp_path, max_items=6).root == ds.root  # built once


def test_captions_read_naturally():
    assert caption("Eevee", ["normal"], []) == "a drawing of a pokemon, Eevee, normal type"
    assert caption("Charizard", ["fire", "flying"], ["orange", "blue"]) == \
        "a drawing of an orange and blue pokemon, Charizard, fire and flying type"


def test_without_the_package_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pokemon", None)  # as if it were not installed
    with pytest.raises(RuntimeError, match="pip install pokemon==0.36"):
        load_dataset("pokemon", tmp_path)
