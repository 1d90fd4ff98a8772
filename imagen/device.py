"""Choosing where and in what precision the cascade runs."""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# "auto": bfloat16 where this machine runs it fast, float32 elsewhere (see fast_bfloat16).
DTYPE_CHOICES = ("auto", *DTYPES)
DTYPE_HELP = "auto (default): bfloat16 where this machine runs it fast, else float32"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" picks CUDA, then Apple MPS, then the CPU; a named device that is absent is an error."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but this machine has no CUDA GPU "
                             "(or this torch build has no CUDA); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} was asked for, but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but MPS is not available here; use cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def fast_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 autocast beats float32 on `device`: on a GPU that supports it, and on a CPU
    whose oneDNN has bfloat16 kernels (AVX-512 or AMX on x86, BF16 on Arm). An AVX2-only CPU
    emulates bfloat16: there the cascade took 7x float32's time (23.5 s against 3.4 s,
    `python benchmarks/latency.py --dtype bfloat16` and `--dtype float32`)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch build without oneDNN
            return False
    return False


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """A dtype by name; "auto" is bfloat16 where it is fast on `device`, else float32."""
    if name == "auto":
        return torch.bfloat16 if fast_bfloat16(device) else torch.float32
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise ValueError(f"unsupported dtype {name}; use float32 or bfloat16")
        return name
    if name not in DTYPES:
        raise ValueError(f"unsupported dtype {name!r}; use one of {list(DTYPE_CHOICES)}")
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bfloat16 runs as autocast over float32 weights: 1.5-1.8x faster on a 2-core CPU with oneDNN's
    bfloat16 kernels, 7x slower on one without them (fast_bfloat16)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
