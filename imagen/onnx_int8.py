"""int8 for the browser (`python -m imagen.export_web --weights int8`, the default): 56% of the
float16 export's bytes (39.6 MB against 70.5), and U-Net steps that run faster in WebAssembly.

Two different things, because the models differ:

- **The U-Nets: int8 arithmetic** (`quantize_unet`). Their convolutions take most of a step, and
  onnxruntime-web runs an int8 convolution faster than a float one (QLinearConv against MLAS's
  float kernels, both WebAssembly SIMD): the page reaches the 64 px image in 0.80x and the 256 px
  one in 0.85x the float16 export's time (benchmarks/browser_int8.py). Static quantization in
  onnxruntime's QDQ form: each convolution's weights int8 per output channel, its input activations
  uint8 per tensor with ranges calibrated on the U-Net's own inputs while the pipeline draws a few
  captions (`record_unet_inputs`), the 0.01% tails clipped (percentile calibration). The first and
  the last convolution stay float: they carry the image itself in and out, and so do the
  attention's and the embeddings' matrices (cheap to run; the export stores them as float16,
  lossless for these U-Nets).
- **The text encoder: int8 storage only** (`store_weights_int8`). It runs once per prompt, so its
  speed does not matter, and int8 activations move its embeddings too far (onnxruntime's
  quantize_dynamic: a relative RMS change of 0.30 on eight captions' token embeddings, against 0.03
  for int8 storage). Each large weight is stored as int8 with one float scale per output row or
  column and a Cast and a Mul in front of the graph; onnxruntime folds those into float32 constants
  when it loads the model, as it folds `onnx_weights`' float16 casts.

What this changes in the pictures is the evaluator's to say (benchmarks/browser_scores.py --weights
int8, docs/browser-cascade.md); the manifest records what was quantized, per model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write
from .onnx_weights import MIN_ELEMENTS, fresh_namer, save_rewritten

KEEP_FLOAT = ("/unet/conv_in/Conv", "/unet/conv_out/Conv")  # the image's way in and out
CALIBRATION_PERCENTILE = 99.99


# ---------------------------------------------------------------- the U-Nets: calibrated int8 arithmetic


@contextmanager
def record_unet_inputs(unet: torch.nn.Module, stage: str, self_conditioned: bool = False
                       ) -> Iterator[list[dict[str, np.ndarray]]]:
    """While open, every call of `unet` is recorded as the feed its exported graph takes (one dict per
    image: the calibrator wants tensors of one shape). The graph's input names: see export_web."""
    feeds: list[dict[str, np.ndarray]] = []

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        x_in, t = args[0].float(), args[1]
        embeds = kwargs["encoder_hidden_states"].float()
        mask, labels = kwargs.get("encoder_attention_mask"), kwargs.get("class_labels")
        t = t.reshape(-1).expand(x_in.shape[0]) if t.numel() == 1 else t.reshape(-1)

        def arr(x: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(x.numpy())  # the pipeline's tensors are channels-last

        for i in range(x_in.shape[0]):
            feed = {"x_t": arr(x_in[i:i + 1, :3]), "timestep": arr(t[i:i + 1].long()),
                    "text_embeds": arr(embeds[i:i + 1])}
            if stage == "sr":
                feed["low_res"] = arr(x_in[i:i + 1, 3:])
                feed["aug_level"] = arr(labels[i:i + 1].long())
            else:
                if mask is not None:
                    feed["text_mask"] = arr(mask[i:i + 1].bool())
                if self_conditioned:
                    feed["x0_prev"] = arr(x_in[i:i + 1, 3:])
            feeds.append(feed)

    handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            yield feeds
    finally:
        handle.remove()


def quantize_unet(path: Path, calibration: list[dict[str, np.ndarray]]) -> dict:
    """Rewrite the float ONNX U-Net at `path` (atomically) in QDQ int8, its activation ranges taken from
    `calibration` (feeds as record_unet_inputs makes them). Returns the convolutions quantized."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = Path(path)
    names = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(calibration)

        def get_next(self) -> dict | None:
            feed = next(self._feeds, None)
            return None if feed is None else {k: v for k, v in feed.items() if k in names}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # shapes for the quantizer; the symbolic pass cannot follow the U-Net's dynamic reshapes
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]
        kept = [n for n in convs if n in KEEP_FLOAT]
        atomic_write(path, lambda out: quantize_static(
            str(prepared), str(out), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
            nodes_to_exclude=kept, calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
            calibration_providers=["CPUExecutionProvider"]))
    return {"int8_convolutions": len(convs) - len(kept), "float_convolutions": len(kept),
            "calibration_feeds": len(calibration)}


# ---------------------------------------------------------------- the text encoder: int8 storage


def _row_axis(consumers: set[str]) -> int | None:
    """The axis that indexes a weight's outputs, so each gets its own scale: a MatMul's B is (in, out),
    a Gather's table (rows, dim) is read a row at a time."""
    if consumers == {"Gather"}:
        return 0
    if consumers <= {"MatMul", "Gemm"}:
        return -1
    return None


def store_weights_int8(path: Path) -> dict:
    """Rewrite the ONNX file at `path` (atomically) with int8 storage for the large float32 weights of
    its MatMuls, Gemms and Gathers, computed in float32. Returns counts and the largest relative
    rounding error of any weight (its change over the largest magnitude in its row)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    fresh = fresh_namer(graph)
    initializers, nodes = [], []
    stored = kept = 0
    worst = 0.0
    for init in graph.initializer:
        axis = _row_axis(consumers.get(init.name, set()))
        array = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if array is None or axis is None or array.ndim != 2 or array.size < MIN_ELEMENTS \
                or not np.isfinite(array).all():
            initializers.append(init)
            kept += 1
            continue
        peak = np.abs(array).max(axis=1 - (axis % 2), keepdims=True)  # per output row or column
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(array / scale), -127, 127).astype(np.int8)
        worst = max(worst, float((np.abs(q * scale - array) / np.where(peak > 0, peak, 1.0)).max()))
        q_name, s_name, f_name = fresh(f"{init.name}__int8"), fresh(f"{init.name}__scale"), fresh(f"{init.name}__f")
        initializers += [numpy_helper.from_array(q, q_name), numpy_helper.from_array(scale, s_name)]
        # The Mul's output takes the weight's own name, so the nodes that read it are unchanged.
        nodes += [helper.make_node("Cast", [q_name], [f_name], to=TensorProto.FLOAT, name=f"{f_name}_cast"),
                  helper.make_node("Mul", [f_name, s_name], [init.name], name=f"{init.name}__dequantize")]
        stored += 1
    before = path.stat().st_size
    save_rewritten(model, path, initializers, nodes)
    return {"int8": stored, "kept": kept, "bytes_before": before, "bytes_after": path.stat().st_size,
            "max_relative_rounding": worst}
