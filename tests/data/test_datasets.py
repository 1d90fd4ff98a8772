import json

import numpy as np
import pytest
from PIL import Image

from imagen.data import load_dataset
from imagen.data.emoji import STYLES, SvgLoader, emoji_items, emoji_name

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (240, 210, 30)}


def write_images(folder, names, size=(80, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in names:
        Image.new("RGB", size, COLOURS[colour]).save(folder / f"{name}.png")


def test_imagefolder_with_metadata_jsonl(tmp_path):
    write_images(tmp_path / "data", [(f"{c}{i}", c) for c in COLOURS for i in range(2)])
    rows = [{"file_name": f"{c}{i}.png", "text": f"a {c} square"} for c in COLOURS for i in range(2)]
    (tmp_path / "data" / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset(str(tmp_path / "data"), cache_dir=tmp_path / "cache")
    assert len(ds) == 8 and ds.images_64.shape == (8, 64, 64, 3) and ds.images_256.shape == (8, 256, 256, 3)
    assert ds.main_captions[0] == "a red square"
    assert tuple(ds.images_64[0, 32, 32]) == COLOURS["red"]  # centre-cropped, resized, not recoloured
    # the second load reuses the cache; a changed folder is prepared again
    assert load_dataset(str(tmp_path / "data"), cache_dir=tmp_path / "cache").root == ds.root
    (tmp_path / "data" / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:4]))
    assert len(load_dataset(str(tmp_path / "data"), cache_dir=tmp_path / "cache")) == 4


def test_caption_files_beside_images_and_unreadable_images_are_skipped_and_counted(tmp_path):
    data = tmp_path / "data"
    write_images(data / "sub", [("a", "green"), ("b", "blue")])
    (data / "sub" / "a.txt").write_text("a green square\n")
    (data / "sub" / "b.txt").write_text("a blue square")
    (data / "broken.png").write_bytes(b"not a png at all")
    (data / "broken.txt").write_text("a broken image")
    (data / "uncaptioned.png").write_bytes((data / "sub" / "a.png").read_bytes())
    ds = load_dataset(str(data), cache_dir=tmp_path / "cache")
    assert sorted(ds.main_captions) == ["a blue square", "a green square"]
    assert ds.info["skipped"] == 1 and "broken.png" in ds.info["skipped_examples"][0]
    # an image without a caption is counted and named, not dropped silently
    assert ds.info["uncaptioned"] == 1
    assert ds.info["uncaptioned_examples"] == ["uncaptioned.png (uncaptioned.txt is missing)"]


def test_images_the_metadata_gives_no_caption_are_counted(tmp_path, capsys):
    write_images(tmp_path / "data", [("a", "red"), ("b", "green"), ("c", "blue")])
    rows = [{"file_name": "a.png", "text": "a red square"}, {"file_name": "b.png", "text": " "}]
    (tmp_path / "data" / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset(str(tmp_path / "data"), cache_dir=tmp_path / "cache")
    assert ds.main_captions == ["a red square"] and ds.info["uncaptioned"] == 2
    assert ds.info["uncaptioned_examples"] == ["b.png (metadata.jsonl line 2 has no text)",
                                               "c.png (not in metadata.jsonl)"]
    assert "skipped 2 image(s) without a caption" in capsys.readouterr().out


def test_transparent_images_are_flattened_onto_white(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    im.paste((200, 0, 0, 255), (16, 16, 48, 48))
    im.save(data / "x.png")
    (data / "x.txt").write_text("a red square on white")
    ds = load_dataset(str(data), cache_dir=tmp_path / "cache")
    assert tuple(ds.images_64[0, 2, 2]) == (255, 255, 255) and tuple(ds.images_64[0, 32, 32]) == (200, 0, 0)


def test_huggingface_dataset_from_a_local_path(tmp_path):
    datasets = pytest.importorskip("datasets")
    images = [Image.new("RGB", (40, 40), COLOURS[c]) for c in COLOURS]
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"image": images, "text": [f"a {c} square" for c in COLOURS]}, features=features)
    ds.save_to_disk(str(tmp_path / "hf"))
    prepared = load_dataset(f"hf:{tmp_path / 'hf'}", cache_dir=tmp_path / "cache")
    assert prepared.main_captions == [f"a {c} square" for c in COLOURS]
    assert tuple(prepared.images_256[2, 128, 128]) == COLOURS["blue"]


def test_missing_and_empty_datasets_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset(str(tmp_path / "nowhere"), cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no captioned images"):
        load_dataset(str(tmp_path / "empty"), cache_dir=tmp_path / "cache")
    pytest.importorskip("datasets")
    with pytest.raises(FileNotFoundError, match="could not load the Hugging Face dataset"):
        load_dataset(f"hf:{tmp_path / 'no-such-dataset'}", cache_dir=tmp_path / "cache")


def test_emoji_items_cover_both_styles_with_styled_and_plain_captions():
    items = emoji_items()
    assert 7500 < len(items) < 8200
    captions = {c[0] for _, c in items}
    for style in STYLES:
        assert f"red apple, {style} style" in captions
        assert f"flag of Japan, {style} style" in captions
    assert all(c[0] == f"{c[1]}, {c[0].rsplit(', ', 1)[1]}" for _, c in items)


def test_emoji_names():
    assert emoji_name("🍎", ":red_apple:") == "red apple"
    assert emoji_name("👋🏿", ":waving_hand_dark_skin_tone:") == "waving hand, dark skin tone"
    assert emoji_name("🇫🇷", ":France:") == "flag of France"


def test_emoji_svgs_render_square_on_white():
    loader = next(loader for loader, caps in emoji_items() if caps[0] == "red apple, openmoji style")
    images = loader()
    for size in (64, 256):
        a = np.asarray(images[size])
        assert a.shape == (size, size, 3)
        assert tuple(a[0, 0]) == (255, 255, 255) and a.std() > 20
    assert isinstance(loader, SvgLoader)
