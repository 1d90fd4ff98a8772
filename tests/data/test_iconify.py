"""Emoji styles from Iconify JSON packages on the npm registry: the SVG each icon becomes, the
--data spelling that asks for them, the fetch (npm pack, for real) and the drawings they render."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from imagen.data import load_dataset
from imagen.data.colours import dominant_hue
from imagen.data.emoji import (
    PACK_ENV,
    STYLES,
    SvgLoader,
    emoji_items,
    emoji_versions,
    load_emoji,
    parse_styles,
    write_pack,
)
from imagen.data.iconify import fetch_package, icon_svg, iconify_svg_dir
from imagen.export import emoji_styles, export
from imagen.images import from_uint8
from imagen.train import main as train_main

# The Iconify JSON format, as the packages write it: set-wide size, icons, aliases with flips.
ICONS = {
    "prefix": "test", "width": 32, "height": 32,
    "icons": {"left": {"body": '<path fill="#f00" d="M0 0h16v32H0z"/>'},
              "tall": {"body": '<path d="M0 0h8v40H0z"/>', "height": 40}},
    "aliases": {"right": {"parent": "left", "hFlip": True}, "right-again": {"parent": "right"},
                "loop-a": {"parent": "loop-b"}, "loop-b": {"parent": "loop-a"}},
}


def render(svg: str, tmp_path) -> np.ndarray:
    path = tmp_path / "icon.svg"
    path.write_text(svg)
    return np.asarray(SvgLoader(path)()[64])


def test_an_alias_draws_its_parent_mirrored_and_sizes_come_from_the_set_or_the_icon(tmp_path):
    left, right = render(icon_svg(ICONS, "left"), tmp_path), render(icon_svg(ICONS, "right"), tmp_path)
    assert left[:, :32].mean() < 200 < left[:, 32:].mean()  # red on the left half, white on the right
    assert np.array_equal(right, left[:, ::-1])
    assert np.array_equal(render(icon_svg(ICONS, "right-again"), tmp_path), right)  # an alias of an alias
    assert 'viewBox="0 0 32 32"' in icon_svg(ICONS, "left")
    assert 'viewBox="0 0 32 40"' in icon_svg(ICONS, "tall")
    assert icon_svg(ICONS, "missing") is None and icon_svg(ICONS, "loop-a") is None


def test_data_names_its_styles_and_the_built_in_set_keeps_its_cache_key():
    assert parse_styles("emoji") == STYLES
    assert parse_styles("emoji:noto, twemoji,noto") == ("noto", "twemoji")
    with pytest.raises(ValueError, match="unknown style comic.*twemoji, openmoji, noto, fluent"):
        parse_styles("emoji:twemoji,comic")
    with pytest.raises(ValueError, match="unknown style"):
        parse_styles("emoji:")
    assert "+" not in emoji_versions() and emoji_versions(("twemoji", "noto")).endswith("-twemoji+noto1.2.9")
    # a style the data has no OpenMoji in: the first style is the page's default
    assert emoji_styles(("noto", "fluent")) == ("noto style", "fluent style")
    assert emoji_styles(("twemoji", "openmoji", "noto"))[0] == "openmoji style"


def test_a_missing_npm_is_a_clear_error_that_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(RuntimeError, match="npm is not installed.*apt-get install npm.*--data emoji"):
        fetch_package("noto", tmp_path / "cache")
    with pytest.raises(RuntimeError, match="npm is not installed"):
        load_dataset("emoji:twemoji,noto", tmp_path / "cache")
    assert not (tmp_path / "cache" / "iconify" / "noto-1.2.9").exists()  # nothing half-written


@pytest.mark.skipif(shutil.which("npm") is None, reason="fetching an Iconify set needs npm")
def test_noto_and_fluent_are_fetched_and_draw_the_same_emoji(tmp_path):
    cache = tmp_path / "cache"
    items = emoji_items(("noto", "fluent"), cache)
    by_caption = {caps[0]: loader for loader, caps in items}
    assert sum(c[0].endswith(", noto style") for _, c in items) > 3500
    assert sum(c[0].endswith(", fluent style") for _, c in items) > 3000
    assert by_caption.keys() >= {"red apple, noto style", "red apple, fluent style", "penguin, fluent style"}
    for style in ("noto", "fluent"):
        heart = np.array(by_caption[f"red heart, {style} style"]()[64])[None]
        assert dominant_hue(from_uint8(heart)) == ["red"]
    # Fluent's code point table lacks 1f449; its icon is an alias of the left hand, mirrored
    assert "1f449" not in json.loads((fetch_package("fluent", cache) / "chars.json").read_text())
    right = np.asarray(by_caption["backhand index pointing right, fluent style"]()[64]).astype(int)
    left = np.asarray(by_caption["backhand index pointing left, fluent style"]()[64]).astype(int)
    assert np.abs(right - left[:, ::-1]).mean() < 3 < np.abs(right - left).mean()
    # fetched once: a second look reads the cache
    folder = iconify_svg_dir("noto", cache)
    assert iconify_svg_dir("noto", cache) == folder and (folder / "1f34e.svg").is_file()


@pytest.mark.skipif(shutil.which("npm") is None, reason="fetching an Iconify set needs npm")
def test_a_pack_carries_its_styles_and_refuses_to_stand_for_others(tmp_path, monkeypatch):
    pack = write_pack(tmp_path / "pack", max_items=12, styles=("noto",), cache_dir=tmp_path / "cache")
    meta = json.loads((pack / "items.json").read_text())
    assert meta["styles"] == ["noto"] and all(caps[0].endswith(", noto style") for _, caps in meta["items"])
    monkeypatch.setenv(PACK_ENV, str(pack))
    ds = load_dataset("emoji", tmp_path / "cache2")  # on the GPU machine, "emoji" is what the pack holds
    assert len(ds) == 12 and ds.info["styles"] == ["noto"]
    with pytest.raises(ValueError, match="holds the styles noto, not twemoji, openmoji"):
        load_emoji(tmp_path / "cache2", STYLES)
    # a run there says --data emoji; its config and its export name the pack's style
    run = tmp_path / "run"
    assert train_main(["--run", str(run), "--data", "emoji", "--cache-dir", str(tmp_path / "cache2"),
                       "--preset", "tiny", "--batch-size", "2", "--steps", "1", "--caption-variety",
                       "--sample-every", "100", "--threads", "1"]) == 0
    assert json.loads((run / "config.json").read_text())["data"] == "emoji:noto"
    monkeypatch.delenv(PACK_ENV)  # exported back home, without the pack
    config = export([run], tmp_path / "ck")
    assert config.styles == ("noto style",) and config.default_style == "noto style"
