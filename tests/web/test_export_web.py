"""The browser export: a tiny checkpoint's ONNX graphs compute what its PyTorch modules compute."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from imagen.export_web import (
    MANIFEST_NAME,
    BaseUNetGraph,
    ExportError,
    export_onnx,
    export_web,
    graph_signature,
    is_current,
    main,
    require_onnx,
    text_encoder_inputs,
    unet_inputs,
)
from imagen.pipeline import ImagenPipeline
from imagen.self_conditioning import sampling_input
from imagen.unets import build_unet, unet_forward
from tests.tiny import make_tiny_pipeline

ort = pytest.importorskip("onnxruntime", reason="the parity tests run the exports in onnxruntime "
                                                "(pip install -r requirements.txt)")
pytest.importorskip("onnx", reason="the export needs onnx (pip install -r requirements.txt)")

# float32 graphs against float32 modules: what differs is the order of operations only. Measured: about
# 4e-6 (tiny base U-Net), 2e-5 (tiny SR U-Net) and 3e-6 (MiniLM), on outputs of size 1.5-6.
ATOL = 1e-4
# MiniLM's float32 weights stored as float16 (the default export): measured 9.3e-4 on the shipped encoder's
# outputs (token embeddings of mean size 0.075), cosine similarity to PyTorch's above 0.99999.
TEXT_ATOL_FLOAT16 = 3e-3


@pytest.fixture(scope="module")
def exported(tmp_path_factory, text_encoder):
    """A tiny checkpoint saved as a release is (float16 weights), exported once for every test here."""
    root = tmp_path_factory.mktemp("web")
    make_tiny_pipeline(text_encoder).save_pretrained(root / "tiny", half=True)
    manifest = export_web(root / "tiny", root / "out", weights="float16")  # exact: the parity tests
    return root / "tiny", root / "out", manifest


def _run(path, feeds: dict[str, torch.Tensor], manifest_inputs: list[dict]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i["name"] for i in manifest_inputs]
    assert names == [i.name for i in session.get_inputs()]  # the manifest tells the page the truth
    return session.run(None, {name: feeds[name].numpy() for name in names})[0]


def test_export_writes_every_file_once_and_a_manifest_last(exported, capsys):
    checkpoint, out, manifest = exported
    assert set(manifest["files"]) >= {"text_encoder.onnx", "base_unet.onnx", "sr_unet.onnx", "schedule_base.json",
                                      "schedule_sr.json", "pipeline.json", "tokenizer/tokenizer.json"}
    for name, size in manifest["files"].items():
        assert (out / name).stat().st_size == size
    assert json.loads((out / "pipeline.json").read_text()) == json.loads((checkpoint / "pipeline.json").read_text())
    assert not list(out.rglob("*.tmp"))
    # The SR stage is cross-attention only: its graph has no use for the text mask, and says so.
    assert "text_mask" not in [i["name"] for i in manifest["stages"]["sr"]["inputs"]]
    assert [i["name"] for i in manifest["stages"]["base"]["inputs"]] == ["x_t", "timestep", "text_embeds", "text_mask"]

    # An unchanged checkpoint is not exported again; a changed one is.
    mtime = (out / "base_unet.onnx").stat().st_mtime_ns
    assert main(["--checkpoint", str(checkpoint), "--out", str(out), "--weights", "float16"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out / "base_unet.onnx").stat().st_mtime_ns == mtime
    manifest_path = out / MANIFEST_NAME
    stale = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**stale, "fingerprint": "another checkpoint"}))
    assert not is_current(out, manifest["fingerprint"])
    manifest_path.write_text(json.dumps(stale))


def test_schedules_are_the_pipelines(exported):
    checkpoint, out, _ = exported
    pipe = ImagenPipeline.from_pretrained(checkpoint, device="cpu", dtype="float32")
    for stage in ("base", "sr"):
        schedule = json.loads((out / f"schedule_{stage}.json").read_text())
        assert schedule["prediction_type"] == getattr(pipe.config, stage).prediction_type
        np.testing.assert_array_equal(np.float32(schedule["alpha_bar"]), pipe._alpha_bar[stage].numpy())
        np.testing.assert_allclose(schedule["betas"], pipe._betas[stage].numpy(), rtol=0, atol=0)
    sr = json.loads((out / "schedule_sr.json").read_text())
    assert sr["defaults"]["steps"] == pipe.defaults.sr_steps and sr["defaults"]["noise_level"] == 100


@pytest.mark.parametrize("stage", ["base", "sr"])
@pytest.mark.parametrize("batch", [1, 2, 3])
def test_unet_graphs_match_pytorch(exported, text_encoder, stage, batch):
    checkpoint, out, manifest = exported
    unet = getattr(ImagenPipeline.from_pretrained(checkpoint, device="cpu", dtype="float32",
                                                  text_encoder=text_encoder), f"{stage}_unet")
    feeds = unet_inputs(stage, unet, text_encoder.dim, text_encoder.max_length, batch=batch, seed=batch)
    got = _run(out / f"{stage}_unet.onnx", feeds, manifest["stages"][stage]["inputs"])
    x_in = torch.cat([feeds["x_t"], feeds["low_res"]], 1) if stage == "sr" else feeds["x_t"]
    with torch.no_grad():  # the pipeline's own call (ImagenPipeline._denoiser)
        want = unet_forward(unet, x_in, feeds["timestep"], feeds["text_embeds"], feeds["text_mask"],
                            feeds.get("aug_level")).numpy()
    assert got.shape == want.shape == (batch, 3, *feeds["x_t"].shape[-2:])
    assert np.abs(got - want).max() <= ATOL
    if stage == "base" and batch > 1:  # the mask is live in the graph: another mask, another output
        feeds["text_mask"] = feeds["text_mask"].flip(0)
        assert np.abs(_run(out / "base_unet.onnx", feeds, manifest["stages"]["base"]["inputs"]) - got).max() > 1e-3


def test_a_self_conditioned_base_stage_takes_the_previous_x0(tmp_path, text_encoder):
    torch.manual_seed(0)
    unet = build_unet("base", "tiny", text_encoder.dim, self_condition=True).eval()
    feeds = unet_inputs("base", unet, text_encoder.dim, text_encoder.max_length)
    export_onnx(BaseUNetGraph(unet), feeds, tmp_path / "base_unet.onnx", "model_out")
    inputs = graph_signature(tmp_path / "base_unet.onnx")["inputs"]
    assert [i["name"] for i in inputs] == ["x_t", "timestep", "text_embeds", "text_mask", "x0_prev"]
    got = _run(tmp_path / "base_unet.onnx", feeds, inputs)
    with torch.no_grad():
        want = unet_forward(unet, sampling_input(feeds["x_t"], feeds["x0_prev"]), feeds["timestep"],
                            feeds["text_embeds"], feeds["text_mask"]).numpy()
    assert np.abs(got - want).max() <= ATOL


@pytest.fixture(scope="module")
def exported_float32(exported):
    checkpoint, out, _ = exported
    manifest = export_web(checkpoint, out.with_name("out-float32"), weights="float32")
    return out.with_name("out-float32"), manifest


@pytest.mark.parametrize("weights", ["float16", "float32"])
def test_text_encoder_graph_matches_pytorch(exported, exported_float32, text_encoder, weights):
    out, manifest = exported[1:] if weights == "float16" else exported_float32
    prompts = ["red apple", "", "a smiling face with heart-shaped eyes, openmoji style, " * 4]  # the last is cut
    got = _run(out / "text_encoder.onnx", text_encoder_inputs(text_encoder, prompts),
               manifest["text_encoder"]["inputs"])
    want = text_encoder.encode(prompts, use_cache=False).text_embeds.numpy()
    assert got.shape == want.shape == (3, text_encoder.max_length, text_encoder.dim)
    assert np.abs(got - want).max() <= (TEXT_ATOL_FLOAT16 if weights == "float16" else ATOL)


def test_float16_storage_halves_the_files_and_keeps_float16_weights_exact(exported, exported_float32):
    _, out, manifest = exported
    out32, manifest32 = exported_float32
    assert manifest["weights"]["storage"] == "float16" and manifest32["weights"]["storage"] == "float32"
    assert manifest["fingerprint"] != manifest32["fingerprint"]  # one folder never passes for the other
    # The U-Nets were saved in float16: storing them so loses nothing. The text encoder is float32: it rounds.
    assert manifest["weights"]["max_rounding"]["base_unet.onnx"] == 0
    assert manifest["weights"]["max_rounding"]["sr_unet.onnx"] == 0
    assert 0 < manifest["weights"]["max_rounding"]["text_encoder.onnx"] < 1e-2
    for name in ("text_encoder.onnx", "base_unet.onnx", "sr_unet.onnx"):
        assert manifest["files"][name] < 0.6 * manifest32["files"][name], name
    # The graphs still take and give float32: the page feeds them as before.
    assert manifest["stages"]["base"]["inputs"] == manifest32["stages"]["base"]["inputs"]
    assert all(o["dtype"] == "float32" for o in manifest["stages"]["sr"]["outputs"])


def test_an_unknown_weight_storage_is_refused(exported, tmp_path):
    with pytest.raises(ExportError, match="float16, float32"):
        export_web(exported[0], tmp_path / "out", weights="int4")
    assert not (tmp_path / "out").exists()


def test_a_missing_checkpoint_is_refused_clearly(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no pipeline checkpoint at" in err and "nowhere" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_onnx_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` meets when it is not installed
    with pytest.raises(ExportError, match="pip install onnx"):
        require_onnx()
    assert main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


# ---------------------------------------------------------------- int8 (onnx_int8)


def test_int8_without_onnxruntime_is_refused_clearly_and_float16_still_exports(monkeypatch, exported, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    with pytest.raises(ExportError, match="pip install onnxruntime"):
        export_web(exported[0], tmp_path / "int8", weights="int8")
    assert not (tmp_path / "int8").exists()
    require_onnx("float16")  # the default export does not need it


@pytest.fixture(scope="module")
def exported_int8(exported):
    checkpoint, out, _ = exported
    manifest = export_web(checkpoint, out.with_name("out-int8"), weights="int8")
    return out.with_name("out-int8"), manifest


def _relative_rms(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.sqrt(((got - want) ** 2).mean() / (want ** 2).mean()))


def test_int8_export_quantizes_the_convolutions_and_stores_the_text_encoder_in_int8(exported, exported_int8):
    import onnx
    _, _, manifest16 = exported
    out, manifest = exported_int8
    assert manifest["weights"]["storage"] == "int8" and manifest["fingerprint"] != manifest16["fingerprint"]
    for stage in ("base", "sr"):
        graph = onnx.load(str(out / f"{stage}_unet.onnx")).graph
        made_by = {o: n.op_type for n in graph.node for o in n.output}
        convs = [n for n in graph.node if n.op_type == "Conv"]
        int8 = [n.name for n in convs if made_by.get(n.input[0]) == "DequantizeLinear"]
        # every convolution but the first and the last reads a dequantized (int8) input
        assert sorted(set(n.name for n in convs) - set(int8)) == ["/unet/conv_in/Conv", "/unet/conv_out/Conv"]
        assert manifest["weights"]["int8"][f"{stage}_unet.onnx"]["int8_convolutions"] == len(int8) > 0
        # the graph still takes the page's float32 feeds
        assert manifest["stages"][stage]["inputs"] == manifest16["stages"][stage]["inputs"]
    text = manifest["weights"]["int8"]["text_encoder.onnx"]
    assert text["int8"] > 0 and 0 < text["max_relative_rounding"] <= 0.5 / 127 + 1e-6  # half a step of 127
    assert manifest["files"]["text_encoder.onnx"] < 0.6 * manifest16["files"]["text_encoder.onnx"]


@pytest.mark.parametrize("stage", ["base", "sr"])
def test_int8_unets_stay_near_pytorch_on_the_pipelines_own_inputs(exported, exported_int8, text_encoder, stage):
    from imagen.export_web import calibration_feeds
    checkpoint, _, _ = exported
    out, manifest = exported_int8
    pipe = ImagenPipeline.from_pretrained(checkpoint, device="cpu", dtype="float32", text_encoder=text_encoder)
    feeds = calibration_feeds(pipe)[stage]  # the inputs the pipeline gives the U-Net while it draws
    # The graph as exported, its QuantizeLinear/DequantizeLinear pairs left unfused: the export's own
    # rounding. Fused into native int8 kernels on an x86 CPU without VNNI (AVX2 only), onnxruntime's
    # u8 x s8 products can saturate (its quantization docs warn of it): 20% (base) and 15% (SR) there,
    # against 6% and 7% unfused. The page runs WebAssembly kernels, whose scores are level with the
    # server's on that CPU (benchmarks/browser_scores.py).
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(out / f"{stage}_unet.onnx"), options, providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(exported[1] / f"{stage}_unet.onnx"), providers=["CPUExecutionProvider"])
    names = [i["name"] for i in manifest["stages"][stage]["inputs"]]
    errors = [_relative_rms(session.run(None, {n: f[n] for n in names})[0],
                            reference.run(None, {n: f[n] for n in names})[0]) for f in feeds[::4]]
    # Measured: a median of 6% (base) and 7% (SR) on this tiny untrained U-Net; 3% and 5% on the shipped ones.
    assert 0 < np.median(errors) < 0.15, errors


def test_int8_calibration_draws_no_held_out_phrasing_or_colour_pair():
    from imagen.data.colours import is_held_out
    from imagen.data.phrasing import HELD_OUT_TEMPLATES, fill
    from imagen.export_web import CALIBRATION_CAPTIONS
    names = ["penguin", "banana", "apple", "grinning face"]
    held_out = {fill(t, x) for t in HELD_OUT_TEMPLATES for x in names}
    assert not any(c.startswith(h) for c in CALIBRATION_CAPTIONS for h in held_out)
    assert not is_held_out("purple", "banana") and not is_held_out("red", "apple")


def test_int8_exports_are_redone_when_the_calibration_changes(exported, monkeypatch):
    import imagen.export_web as export_module
    checkpoint = exported[0]
    before = export_module.checkpoint_fingerprint(checkpoint, "int8")
    assert export_module.checkpoint_fingerprint(checkpoint, "float16") == exported[2]["fingerprint"]
    monkeypatch.setattr(export_module, "CALIBRATION_CAPTIONS", ("snowman",))
    assert export_module.checkpoint_fingerprint(checkpoint, "int8") != before
    assert export_module.checkpoint_fingerprint(checkpoint, "float16") == exported[2]["fingerprint"]


def test_int8_storage_of_a_matmul_and_a_gather_rounds_each_row_to_half_a_step(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from imagen.onnx_int8 import store_weights_int8
    rng = np.random.default_rng(0)
    table = rng.normal(size=(64, 32)).astype(np.float32) * rng.uniform(0.01, 10, size=(64, 1)).astype(np.float32)
    weight = rng.normal(size=(32, 48)).astype(np.float32) * rng.uniform(0.01, 10, size=(1, 48)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["h"]), helper.make_node("MatMul", ["h", "weight"], ["y"])],
        "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 48])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "weight")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    ids = np.arange(64)
    want = ort.InferenceSession(str(path)).run(None, {"ids": ids})[0]
    stats = store_weights_int8(path)
    assert stats["int8"] == 2 and stats["bytes_after"] < 0.4 * stats["bytes_before"]
    got = ort.InferenceSession(str(path)).run(None, {"ids": ids})[0]
    # Each row of the table and each column of the weight has its own scale: a row of small values keeps
    # its precision beside a row of large ones.
    row_step = np.abs(table).max(1, keepdims=True) / 254  # (64, 1): each table row's half step
    column_step = np.abs(weight).max(0, keepdims=True) / 254  # (1, 48): each weight column's
    bound = row_step * np.abs(weight).sum(0) + np.abs(table).sum(1, keepdims=True) * column_step
    assert (np.abs(got - want) <= 1.01 * bound + 1e-4).all()
    assert _relative_rms(got, want) > 0  # it did round
