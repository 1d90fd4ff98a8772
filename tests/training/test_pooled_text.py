"""The pooled text path taught to read framed captions as their bare ones (python -m imagen.align_text)."""

import numpy as np
import torch
from safetensors.torch import load_file

from imagen.align_text import align, main
from imagen.data.colours import is_held_out
from imagen.data.phrasing import CORE_TEMPLATES, HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, fill
from imagen.pipeline import ImagenPipeline
from imagen.training.pooled_text import AlignShares, PooledTextAligner, caption_pair


def test_a_pair_is_a_training_frame_around_its_bare_caption_and_never_a_held_out_one():
    rng = np.random.default_rng(0)
    pairs = [caption_pair("owl", "openmoji", rng, CORE_TEMPLATES, ("bird",)) for _ in range(3000)]
    framed = [(read, bare) for read, bare in pairs if read != bare]
    assert 0.6 < len(framed) / len(pairs) < 0.8 and ("", "") in pairs
    for read, bare in framed:
        x = bare.removesuffix(", openmoji style")
        assert read.removesuffix(bare[len(x):]) in {fill(t, x) for t in CORE_TEMPLATES}, (read, bare)
    assert not any(read.startswith(fill(t, "x").split(" x")[0]) for t in HELD_OUT_TEMPLATES for read, _ in framed
                   if t.startswith("a picture") or t.startswith("draw me"))
    words = {bare.split()[0] for _, bare in pairs if bare}
    assert {"owl", "bird"} <= words
    colours = {w for w in words if w not in ("owl", "bird")}
    assert colours and not any(is_held_out(c, "owl") for c in colours)  # the hold-out rule holds
    assert any(b.endswith(", openmoji style") for _, b in pairs) and any(b == "owl" for _, b in pairs)
    composed = {caption_pair("owl", None, rng, ("a tiny {x}", "{x} icon"), (), AlignShares(framed=1.0, colour=0.0,
                                                                                          composed=1.0))[0]
                for _ in range(200)}
    assert composed == {"a tiny owl icon", "a tiny owl", "owl icon", "owl"}  # the words before x and after it mixed
    qualified = caption_pair("waving hand, dark skin tone", None, np.random.default_rng(1), ("a big {x}",), (),
                             AlignShares(framed=1.0, colour=0.0))
    assert qualified == ("a big waving hand, dark skin tone", "waving hand, dark skin tone")


def test_aligning_moves_only_the_pooled_path_lowers_its_loss_and_resumes_exactly(tiny_checkpoint, shapes_folder,
                                                                                 tmp_path, text_encoder):
    source = ImagenPipeline.from_pretrained(tiny_checkpoint, device="cpu", dtype="float32")
    rng = np.random.default_rng(99)  # other draws than training's, from the same captions and frames
    names = ["a red circle on white", "a blue square on white", "a green circle on white"]
    probe = [caption_pair(names[k % 3], None, rng, TRAIN_TEMPLATES, shares=AlignShares(framed=0.8)) for k in range(24)]

    def probe_loss(add_embedding: torch.nn.Module) -> float:
        aligner = PooledTextAligner(source.base_unet.add_embedding, text_encoder)
        aligner.student.load_state_dict(add_embedding.state_dict())
        with torch.no_grad():
            return aligner.loss([r for r, _ in probe], [t for _, t in probe]).item()

    kw = dict(lr=1e-3, batch_size=8, data=str(shapes_folder), cache_dir=tmp_path / "cache", save_every=5,
              progress=False)
    straight = tmp_path / "straight"
    losses = align(tiny_checkpoint, tmp_path / "run-a", straight, steps=20, **kw)
    assert len(losses) == 20
    aligned = ImagenPipeline.from_pretrained(straight, device="cpu", dtype="float32")
    assert probe_loss(aligned.base_unet.add_embedding) < 0.5 * probe_loss(source.base_unet.add_embedding)
    before, after = load_file(tiny_checkpoint / "base" / "diffusion_pytorch_model.safetensors"), \
        load_file(straight / "base" / "diffusion_pytorch_model.safetensors")
    changed = {k for k in before if not torch.equal(before[k].half(), after[k])}  # written as fp16, as released
    assert changed and all(k.startswith("add_embedding.") for k in changed)
    for stage in ("sr",):  # the rest of the checkpoint as it was
        a, b = (load_file(p / stage / "diffusion_pytorch_model.safetensors") for p in (tiny_checkpoint, straight))
        assert all(torch.equal(a[k].half(), b[k]) for k in a)
    # stopped after 10 steps (its checkpoint saved), then run on to 20: the same weights as straight through
    assert len(align(tiny_checkpoint, tmp_path / "run-b", tmp_path / "half", steps=10, **kw)) == 10
    assert len(align(tiny_checkpoint, tmp_path / "run-b", tmp_path / "resumed", steps=20, **kw)) == 10
    resumed = load_file(tmp_path / "resumed" / "base" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(after[k], resumed[k]) for k in after)
    # a run folder of other settings is refused, with nothing written
    assert main(["--checkpoint", str(tiny_checkpoint), "--run", str(tmp_path / "run-b"), "--out",
                 str(tmp_path / "other"), "--steps", "24", "--data", str(shapes_folder),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert not (tmp_path / "other").exists()
    assert main(["--checkpoint", str(tiny_checkpoint), "--run", str(tmp_path / "r"), "--out",
                 str(tiny_checkpoint)]) == 2  # never over its own source
