"""Halve an ONNX file's download: store its float32 weights as float16, computed in float32.

Each large float32 initializer W becomes a float16 initializer and a `Cast(W_fp16) -> W` node in
front of the graph, so every other node still reads float32. onnxruntime folds those casts into
float32 constants when it loads the model (constant folding, on at every optimization level), so the
arithmetic, the speed and the memory in the browser are as before; only the bytes on the wire halve.

For U-Net weights trained and shipped in float16 (checkpoints/*/base, sr) this is lossless: every
value is a float16 already. For a float32 model (the text encoder) each weight is rounded to 11
significant bits; the export's tests and the evaluator measure what that changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .files import atomic_write

FLOAT16_MAX = float(np.finfo(np.float16).max)
MIN_ELEMENTS = 1024  # smaller tensors (biases, norms) stay float32: they cost little and some are precise


def _halvable(array: np.ndarray) -> bool:
    """Whether `array` fits float16's range; values too small for it would flush to zero, so a tensor
    whose nonzero values mostly sit below float16's normal range is left alone too."""
    if array.size < MIN_ELEMENTS or not np.isfinite(array).all():
        return False
    magnitude = np.abs(array)
    if magnitude.max(initial=0) > FLOAT16_MAX:
        return False
    nonzero = magnitude[magnitude > 0]
    return not len(nonzero) or np.mean(nonzero < np.finfo(np.float16).tiny) < 0.01


def fresh_namer(graph) -> Callable[[str], str]:
    """A function giving names no initializer or node output of `graph` has (nor any it gave before)."""
    taken = {i.name for i in graph.initializer} | {n for node in graph.node for n in node.output}

    def fresh(name: str) -> str:
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    return fresh


def save_rewritten(model, path: Path, initializers: list, front_nodes: list) -> None:
    """Give `model`'s graph these initializers and put `front_nodes` (which make weights out of them)
    ahead of its nodes, so it stays topologically sorted; check it and write it to `path` atomically."""
    import onnx

    graph = model.graph
    graph.ClearField("initializer")
    graph.initializer.extend(initializers)
    nodes = list(front_nodes) + list(graph.node)
    graph.ClearField("node")
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    atomic_write(path, lambda tmp: onnx.save(model, str(tmp)))


def store_weights_float16(path: Path) -> dict[str, int]:
    """Rewrite the ONNX file at `path` (atomically) with float16 storage for its large float32 weights.
    Returns counts: tensors halved and kept, bytes before and after, and the largest rounding error."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    fresh = fresh_namer(graph)
    initializers, casts = [], []
    halved = kept = 0
    worst = 0.0
    for init in graph.initializer:
        array = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if array is None or init.name not in used or not _halvable(array):
            initializers.append(init)
            kept += 1
            continue
        half_name = fresh(f"{init.name}__float16")
        half = array.astype(np.float16)
        worst = max(worst, float(np.abs(half.astype(np.float32) - array).max()))
        initializers.append(numpy_helper.from_array(half, half_name))
        # The cast's output takes the weight's own name, so the nodes that read it are unchanged.
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_float32"))
        halved += 1
    before = path.stat().st_size
    save_rewritten(model, path, initializers, casts)
    return {"halved": halved, "kept": kept, "bytes_before": before, "bytes_after": path.stat().st_size,
            "max_rounding": worst}
