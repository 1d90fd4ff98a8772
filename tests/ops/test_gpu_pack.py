"""The GPU pack: a pruned text encoder that encodes the dataset's captions as the full one does,
the emoji set in a few MB, and a training chunk that resumes and brings back small fp16 files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from imagen.data.caption_variety import CaptionVariety
from imagen.data.emoji import DEFAULT_STYLE, PACK_ENV, emoji_aliases, emoji_items, load_emoji
from imagen.images import from_uint8
from imagen.pipeline import ImagenPipeline
from imagen.text_encoder import TextEncoder
from ops.gpu_pack import build_pack, prune_text_encoder

pytestmark = pytest.mark.slow  # renders the emoji, trains and exports in subprocesses

ROOT = Path(__file__).resolve().parents[2]


def test_pruned_text_encoder_tokenises_and_encodes_its_captions_as_the_full_one(tmp_path, text_encoder):
    captions = [c for _, caps in emoji_items()[::40] for c in caps]
    pruned = TextEncoder(str(prune_text_encoder(captions[::2], tmp_path / "te")))
    assert pruned.tokenizer.vocab_size < 2000 < text_encoder.tokenizer.vocab_size
    assert (tmp_path / "te" / "model.safetensors").stat().st_size < 30e6  # the full model is 91 MB
    seen = captions[::2]
    full, small = text_encoder.encode(seen, use_cache=False), pruned.encode(seen, use_cache=False)
    assert torch.equal(full.text_mask, small.text_mask)
    assert (full.text_embeds - small.text_embeds).abs().max() < 0.02  # fp16 rounding; values reach ~6
    # a word it never saw is unknown to it: the pack must hold every caption it will encode
    assert pruned.tokenizer.tokenize("xylophone")[0] == "[UNK]"


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / ".gpu-pack"
    sizes = build_pack(out, wheels=False, max_items=40)
    return out, sizes


def test_the_packs_text_encoder_knows_every_word_caption_variety_can_draw(small_pack, tmp_path, monkeypatch):
    pack, _ = small_pack
    monkeypatch.setenv(PACK_ENV, str(pack / "emoji"))
    ds = load_emoji(tmp_path / "cache")
    variety = CaptionVariety(ds.captions, ds.images_64, emoji_aliases(), DEFAULT_STYLE, recolour=0.5)
    monkeypatch.delenv(PACK_ENV)
    assert any(variety.aliases)  # the pack carries the aliases: the GPU machine has no emoji package
    pruned = TextEncoder(str(pack / "text_encoder"))
    images = from_uint8(np.array(ds.images_64))
    captions = {c for seed in range(30) for c in variety.draw(torch.arange(len(ds)), images,
                                                               torch.Generator().manual_seed(seed))[0]}
    assert len(captions) > 500
    assert not [c for c in captions if "[UNK]" in pruned.tokenizer.tokenize(c)]


def test_the_packed_emoji_render_as_the_installed_ones(small_pack, tmp_path, monkeypatch):
    pack, sizes = small_pack
    assert sizes["emoji"] < 1 and sizes["text_encoder"] < 30
    monkeypatch.setenv(PACK_ENV, str(pack / "emoji"))
    packed = load_emoji(tmp_path / "cache")
    monkeypatch.delenv(PACK_ENV)
    items = emoji_items()[:40]
    assert packed.captions == [caps for _, caps in items]
    direct = items[7][0]()  # render one straight from the installed package's SVG
    assert np.array_equal(packed.images_64[7], np.asarray(direct[64]))


def test_a_training_chunk_resumes_and_exports_small_fp16_files(small_pack, tmp_path):
    pack, _ = small_pack
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "IMAGEN_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    flags = ["--preset", "tiny", "--batch-size", "4", "--steps", "3", "--log-every", "1", "--sample-every", "100"]
    first = subprocess.run(["bash", str(pack / "train_chunk.sh"), "base", "300", *flags], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    config = json.loads((tmp_path / "runs" / "gpu-base" / "config.json").read_text())
    assert config["text_encoder"] == "all-MiniLM-L6-v2" and config["data"] == "emoji"  # as a CPU run records them
    second = subprocess.run(["bash", str(pack / "train_chunk.sh"), "base", "300"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "resumed" in second.stdout + second.stderr
    files = [f for f in (out / "base").rglob("*") if f.is_file()]
    assert files and all(f.stat().st_size <= 15e6 for f in files)
    pipe = ImagenPipeline.from_pretrained(out / "base", device="cpu", dtype="float32")
    assert next(pipe.base_unet.parameters()).dtype == torch.float32  # stored fp16, upcast on load
    assert pipe("red apple", steps=2).images_64[0].size == (64, 64)
    # an SR chunk is exported beside this machine's base run, as one pipeline
    sr = subprocess.run(["bash", str(pack / "train_chunk.sh"), "sr", "300", *flags, "--crop-size", "32"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert sr.returncode == 0, sr.stderr[-2000:]
    paired = ImagenPipeline.from_pretrained(out / "sr", device="cpu", dtype="float32")
    assert paired.config.sr is not None and paired.config.defaults.sr


def test_a_session_trains_three_warm_starts_brings_back_four_files_and_a_second_call_goes_on(small_pack, tmp_path):
    """The whole lent session (`bash .gpu-pack/session.sh TOTAL`), on this CPU with batches of 2."""
    import tarfile
    pack, _ = small_pack
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "IMAGEN_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "SMOKE": "1", "GPU_SESSION_TMP": str(tmp_path / "work"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(pack / "session.sh"), "100"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    files = sorted(f.name for f in out.iterdir())
    assert files == ["meta.tar.gz", "pd-base.safetensors", "plain-base.safetensors", "plain-sr.safetensors"], \
        done.stdout[-4000:]
    assert all(f.stat().st_size <= 16 * 2**20 for f in out.iterdir())
    with tarfile.open(out / "meta.tar.gz") as tar:
        tar.extractall(tmp_path / "meta", filter="data")
    meta = tmp_path / "meta" / "gpu-meta"
    def config_of(name: str) -> dict:
        return json.loads((meta / name / "config.json").read_text())

    for name in ("base", "base-pd", "sr"):
        config = config_of(name)
        assert config["init_from"].endswith("checkpoints/emoji") and config["steps"] >= 1
    assert (config_of("base")["pooled_text_dropout"], config_of("base-pd")["pooled_text_dropout"]) == (0.0, 0.5)
    exported = json.loads((meta / "exports" / "plain" / "pipeline.json").read_text())
    assert exported["styles"] == ["openmoji style", "twemoji style"]  # emoji captions name styles
    assert config_of("base")["caption_variety"] and exported["default_style"] == "openmoji style"  # bare = OpenMoji
    # put back as the session's docstring says: a copy of the shipped checkpoint with the new weights
    ck = tmp_path / "ck"
    subprocess.run(["cp", "-r", str(ROOT / "checkpoints" / "emoji"), str(ck)], check=True)
    for stage, weights in (("base", "plain-base"), ("sr", "plain-sr")):
        (out / f"{weights}.safetensors").replace(ck / stage / "diffusion_pytorch_model.safetensors")
        (meta / "exports" / "plain" / stage / "config.json").replace(ck / stage / "config.json")
    pipe = ImagenPipeline.from_pretrained(ck, device="cpu", dtype="float32")
    assert pipe("red apple", steps=2, sr_steps=2).images_256[0].size == (256, 256)
    # a second call on the same (still warm) machine goes on from the first call's export
    first = tmp_path / "work" / "exp" / "plain"
    env2 = {**env, "OUT": str(tmp_path / "out2"), "GPU_SESSION_TMP": str(tmp_path / "work2"),
            "RUNS": "base-core base-sc gan", "INIT_FROM": str(first)}
    again = subprocess.run(["bash", str(pack / "session.sh"), "100"], cwd=tmp_path, env=env2,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    back = sorted(f.name for f in (tmp_path / "out2").iterdir())
    assert back == ["core-base.safetensors", "gan.safetensors", "meta.tar.gz", "sc-base.safetensors"], \
        again.stdout[-4000:]
    config = json.loads((tmp_path / "work2" / "runs" / "gpu-base-core" / "config.json").read_text())
    assert config["init_from"] == str(first) and config["phrasings"] == "core"
    # the GAN, from scratch beside it, goes into a checkpoint as its gan/ folder and draws
    from imagen.gan.sampler import GanSampler
    with tarfile.open(tmp_path / "out2" / "meta.tar.gz") as tar:
        tar.extractall(tmp_path / "meta2", filter="data")
    (ck / "gan").mkdir()
    (tmp_path / "out2" / "gan.safetensors").replace(ck / "gan" / "model.safetensors")
    (tmp_path / "meta2" / "gpu-meta" / "gan" / "gan_config.json").replace(ck / "gan" / "config.json")
    assert GanSampler.from_pretrained(ck, device="cpu")(["red apple"], seed=0)[0].size == (64, 64)
