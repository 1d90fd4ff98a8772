"""Export a pipeline checkpoint for the browser: the whole cascade as files a page can load.

    python -m imagen.export_web --checkpoint checkpoints/emoji        # -> web/models/emoji/

writes, into one folder (never committed; an export whose checkpoint has not changed is kept):

    text_encoder.onnx        input_ids, attention_mask (B, L) int64 -> text_embeds (B, L, D), zero at padding
    tokenizer/               tokenizer.json and its companions, as the text encoder was loaded offline
    base_unet.onnx           x_t (B, 3, 64, 64), timestep (B,) int64, text_embeds, text_mask (B, L) bool
                             [, x0_prev (B, 3, 64, 64) for a self-conditioned stage] -> model_out (eps or v)
    sr_unet.onnx             x_t (B, 3, 256, 256), timestep, text_embeds, low_res (B, 3, 256, 256),
                             aug_level (B,) int64 -> model_out
    schedule_base.json       what the JavaScript sampler (imagen/web/static/sampler.js) needs per stage:
    schedule_sr.json         betas, alpha_bar, alphas_cumprod, prediction type, default settings
    pipeline.json            the checkpoint's own config
    manifest.json            every file above, each model's real input and output names; written last,
                             so a folder without it is an unfinished export

Each U-Net graph is the pipeline's own call (`unet_forward`): the SR stage's low-res image is
concatenated to x_t inside the graph, and a batch of 2B is a guided step (caption-free half first).
The default export (`--weights int8`) runs the U-Nets' convolutions in int8, calibrated on the
pipeline's own steps, and stores the text encoder's weights in int8 (`onnx_int8`): 54 MB for a first
visit where float16 takes 85, 0.85x its time in the browser, and level with it on the evaluator's
scores (docs/browser-cascade.md). `--weights float16` stores every weight as float16 and computes in
float32 (`onnx_weights`): lossless for the U-Nets, which ship in float16. Needs the `onnx` package
(and, for int8, `onnxruntime`; both in requirements.txt) to export; a finished export serves without
them.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import shutil
import sys
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel

from .config import CONFIG_NAME, DEFAULT_CHECKPOINT, CheckpointError, DiffusionConfig, Settings
from .diffusion import alpha_bars, dynamic_threshold, make_betas
from .files import atomic_write, atomic_write_text
from .onnx_int8 import CALIBRATION_PERCENTILE, KEEP_FLOAT, quantize_unet, record_unet_inputs, store_weights_int8
from .onnx_weights import store_weights_float16
from .pipeline import ImagenPipeline
from .self_conditioning import sampling_input
from .text_encoder import TextEncoder, resolve_text_encoder
from .unets import is_self_conditioned, unet_forward

EXPORT_VERSION = 3  # bump when the files' layout or meaning changes: older exports are then redone
OPSET = 17
WEIGHTS = ("int8", "float16", "float32")  # how the ONNX files store their weights (see onnx_int8, onnx_weights)
DEFAULT_WEIGHTS = "int8"  # scored level with float16 by the evaluator, 0.85x its time in the browser, 64% of its bytes
# What the pipeline draws while int8 calibration records the U-Nets' inputs: names, phrasings, colours, styles,
# all as training captions them (the evaluation's held-out phrasings and colour pairs stay out of this too).
CALIBRATION_CAPTIONS = ("red apple", "penguin emoji", "purple banana, twemoji style", "grinning face")
CALIBRATION_FEEDS = 32  # per stage, spread over every step drawn: the calibrator keeps each one's activations
DEFAULT_OUT_ROOT = Path("web/models")
MANIFEST_NAME = "manifest.json"
IMAGE_SIZES = {"base": 64, "sr": 256}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                   "spiece.model")
# dynamic_threshold's cap on s, read from its signature so the page and the pipeline cannot drift apart.
THRESHOLD_MAX_VALUE = inspect.signature(dynamic_threshold).parameters["max_value"].default


class ExportError(RuntimeError):
    """The export cannot run: a missing package or checkpoint, said in one line."""


def require_onnx(weights: str = DEFAULT_WEIGHTS) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError("exporting for the browser needs the onnx package: pip install onnx "
                          "(or pip install -r requirements.txt)") from None
    if weights == "int8":
        try:
            import onnxruntime.quantization  # noqa: F401  (calibrates and quantizes)
        except ImportError:
            raise ExportError("the int8 export needs the onnxruntime package: pip install onnxruntime "
                              "(or pip install -r requirements.txt), or export --weights float16") from None


# ---------------------------------------------------------------- the graphs


class BaseUNetGraph(torch.nn.Module):
    """The base stage as the pipeline calls it: (x_t, t, text) -> eps or v."""

    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet
        self.self_conditioned = is_self_conditioned("base", unet)

    def forward(self, x_t: torch.Tensor, timestep: torch.Tensor, text_embeds: torch.Tensor, text_mask: torch.Tensor,
                x0_prev: torch.Tensor | None = None) -> torch.Tensor:
        x_in = sampling_input(x_t, x0_prev) if self.self_conditioned else x_t  # (B, 6 or 3, 64, 64)
        return unet_forward(self.unet, x_in, timestep, text_embeds, text_mask)


class SRUNetGraph(torch.nn.Module):
    """The SR stage as the pipeline calls it: x_t beside the (noise-augmented) low-res image, told its level."""

    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet

    def forward(self, x_t: torch.Tensor, timestep: torch.Tensor, text_embeds: torch.Tensor, text_mask: torch.Tensor,
                low_res: torch.Tensor, aug_level: torch.Tensor) -> torch.Tensor:
        x_in = torch.cat([x_t, low_res], dim=1)  # (B, 6, 256, 256)
        # unet_forward leaves the mask out for the SR stage (cross-attention only), so the exporter
        # drops the text_mask input from this graph: the manifest lists the inputs that remain.
        return unet_forward(self.unet, x_in, timestep, text_embeds, text_mask, aug_level)


class TextEncoderGraph(torch.nn.Module):
    """TextEncoder._encode_uncached after the tokenizer: token embeddings, zeroed at the padding."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        return hidden.float() * attention_mask[..., None]


def unet_inputs(stage: str, unet: UNet2DConditionModel, text_dim: int, max_length: int,
                batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Example inputs of a stage's graph, named as the graph names them (also what the tests feed)."""
    g = torch.Generator().manual_seed(seed)
    size = IMAGE_SIZES[stage]
    mask = torch.zeros(batch, max_length, dtype=torch.bool)
    for i in range(batch):
        mask[i, :min(max_length, 2 + 3 * i)] = True  # rows of different lengths: the mask must matter
    inputs = {
        "x_t": torch.randn(batch, 3, size, size, generator=g),
        "timestep": torch.randint(0, 1000, (batch,), generator=g),
        "text_embeds": torch.randn(batch, max_length, text_dim, generator=g) * mask[..., None],
        "text_mask": mask,
    }
    if stage == "sr":
        inputs["low_res"] = torch.randn(batch, 3, size, size, generator=g)
        inputs["aug_level"] = torch.randint(0, 300, (batch,), generator=g)
    elif is_self_conditioned("base", unet):
        inputs["x0_prev"] = torch.randn(batch, 3, size, size, generator=g).clamp(-1, 1)
    return inputs


def text_encoder_inputs(encoder: TextEncoder, prompts: list[str]) -> dict[str, torch.Tensor]:
    tokens = encoder.tokenizer(prompts, padding="max_length", truncation=True, max_length=encoder.max_length,
                               return_tensors="pt")
    return {"input_ids": tokens["input_ids"].long(), "attention_mask": tokens["attention_mask"].long()}


def export_onnx(graph: torch.nn.Module, inputs: dict[str, torch.Tensor], path: Path, output_name: str) -> None:
    """Trace `graph` on `inputs` into an ONNX file at `path` (atomically), batch size left free."""
    graph = graph.eval()  # a fresh wrapper is in training mode, and the exporter restores that mode
    names = list(inputs)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) traces diffusers' U-Net without onnxscript; torch
        # 2.13 calls it deprecated, and the tracer warns about shape checks that are constant here.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # transformers builds the text encoder's attention mask by indexing with aranges, never
        # negative, which is the case the exporter warns about (the parity test checks the result).
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        atomic_write(path, lambda tmp: torch.onnx.export(
            graph, tuple(inputs.values()), str(tmp), dynamo=False, opset_version=OPSET,
            input_names=names, output_names=[output_name],
            dynamic_axes={name: {0: "batch"} for name in [*names, output_name]}))


def graph_signature(path: Path) -> dict[str, list[dict]]:
    """The inputs and outputs an ONNX file really has (the exporter drops inputs a graph never reads)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)

    def describe(values: list) -> list[dict]:
        return [{"name": v.name, "dtype": helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                 "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]} for v in values]
    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


# ---------------------------------------------------------------- schedules and settings


def schedule_json(stage: str, diffusion: DiffusionConfig, betas: torch.Tensor, alpha_bar: torch.Tensor,
                  defaults: Settings) -> dict:
    """Everything the JavaScript sampler needs to reproduce one stage of the Python pipeline."""
    # The pipeline's alpha_bar (a float64 product, stored float32) converts the network's output to
    # x0 and noise-augments; diffusers' schedulers keep their own float32 product of float32 betas.
    # Both are shipped so the browser's steps match the Python ones to float32 rounding.
    alphas_cumprod = torch.cumprod(1 - betas.float(), dim=0)
    if stage == "base":
        settings = {"sampler": defaults.sampler, "steps": defaults.steps, "guidance_scale": defaults.guidance_scale,
                    "guidance_min_t": defaults.guidance_min_t}
    else:
        settings = {"sampler": defaults.sampler, "steps": defaults.sr_steps,
                    "guidance_scale": defaults.sr_guidance_scale, "noise_level": defaults.sr_noise_level,
                    "consistency": defaults.sr_consistency}
    return {
        "stage": stage,
        "image_size": IMAGE_SIZES[stage],
        "schedule": diffusion.schedule,
        "prediction_type": diffusion.prediction_type,
        "num_timesteps": diffusion.num_timesteps,
        "timestep_spacing": "trailing",  # samplers.make_scheduler's, for every sampler
        "thresholding": {"percentile": defaults.threshold, "max_value": THRESHOLD_MAX_VALUE},
        "defaults": settings,
        "betas": betas.double().tolist(),
        "alpha_bar": alpha_bar.float().tolist(),
        "alphas_cumprod": alphas_cumprod.tolist(),
    }


# ---------------------------------------------------------------- the export


def default_out(checkpoint: Path, weights: str = DEFAULT_WEIGHTS) -> Path:
    """web/models/<checkpoint name>, with -<weights> for other weights than the default (both can stay exported)."""
    return DEFAULT_OUT_ROOT / (Path(checkpoint).resolve().name + ("" if weights == DEFAULT_WEIGHTS else f"-{weights}"))


def checkpoint_fingerprint(checkpoint: Path, weights: str = DEFAULT_WEIGHTS) -> str:
    """A hash of the checkpoint's files and of what shapes the export: an unchanged one is not redone."""
    h = hashlib.sha256(f"{EXPORT_VERSION} {OPSET} {torch.__version__} {weights}".encode())
    if weights == "int8":  # what the calibration draws shapes the int8 files too
        h.update(f"{CALIBRATION_CAPTIONS} {CALIBRATION_FEEDS} {CALIBRATION_PERCENTILE} {KEEP_FLOAT}".encode())
    files = [checkpoint / CONFIG_NAME] + sorted(f for d in ("base", "sr") for f in (checkpoint / d).glob("*")
                                                if f.is_file())
    for f in files:
        h.update(str(f.relative_to(checkpoint)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def is_current(out: Path, fingerprint: str) -> bool:
    """Whether `out` holds a finished export of this very checkpoint."""
    try:
        manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("fingerprint") == fingerprint
            and all((out / name).is_file() for name in manifest.get("files", {})))


def _report(out: Path, name: str) -> None:
    size = (out / name).stat().st_size
    print(f"  wrote {out / name} ({size / 1e6:.1f} MB)" if size >= 1e5 else f"  wrote {out / name} ({size} bytes)",
          flush=True)


def export_tokenizer(encoder: TextEncoder, folder: Path) -> list[Path]:
    """The tokenizer files, copied from the local folder the encoder was loaded from (what a browser
    tokenizer reads: tokenizer.json first), or saved by the tokenizer when it came from a hub cache."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(resolve_text_encoder(encoder.name)).expanduser()
    with tempfile.TemporaryDirectory() as saved:
        if not (source / "tokenizer.json").is_file():
            encoder.tokenizer.save_pretrained(saved)
            source = Path(saved)
        written = []
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                atomic_write(folder / name, lambda tmp, src=source / name: shutil.copyfile(src, tmp))
                written.append(folder / name)
    return written


def calibration_feeds(pipe: ImagenPipeline) -> dict[str, list]:
    """The U-Nets' inputs, per stage, while the pipeline draws CALIBRATION_CAPTIONS at its defaults:
    what int8 calibration measures the activations' ranges on."""
    print(f"drawing {len(CALIBRATION_CAPTIONS)} captions to calibrate int8", flush=True)
    with record_unet_inputs(pipe.base_unet, "base", is_self_conditioned("base", pipe.base_unet)) as base, \
            (record_unet_inputs(pipe.sr_unet, "sr") if pipe.sr_unet is not None else nullcontext([])) as sr:
        for i, caption in enumerate(CALIBRATION_CAPTIONS):
            pipe(caption, seed=i)

    def spread(feeds: list) -> list:
        return [feeds[i] for i in np.linspace(0, len(feeds) - 1, min(CALIBRATION_FEEDS, len(feeds))).astype(int)]
    return {"base": spread(base), "sr": spread(sr)}


def export_web(checkpoint: Path, out: Path, force: bool = False, weights: str = DEFAULT_WEIGHTS) -> dict:
    """Export `checkpoint` into `out` and return the manifest; a current export is kept as it is.
    `weights`: int8 (the default) stores the text encoder in a quarter of the bytes and runs the U-Nets'
    convolutions in int8 (see onnx_int8); float16 stores every weight in half the bytes, computed in
    float32 as trained (see onnx_weights); float32 as trained."""
    if weights not in WEIGHTS:
        raise ExportError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    checkpoint, out = Path(checkpoint), Path(out)
    if not (checkpoint / CONFIG_NAME).is_file():
        raise CheckpointError(f"no pipeline checkpoint at {checkpoint} ({CONFIG_NAME} is missing); "
                              f"give --checkpoint a folder such as {DEFAULT_CHECKPOINT}")
    fingerprint = checkpoint_fingerprint(checkpoint, weights)
    if not force and is_current(out, fingerprint):  # a finished export serves without the onnx package
        print(f"{out} is up to date with {checkpoint} (--force exports again)")
        return json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    require_onnx(weights)

    # 1. load the checkpoint as the app does, in float32 on the CPU
    pipe = ImagenPipeline.from_pretrained(checkpoint, device="cpu", dtype="float32")
    config, encoder = pipe.config, pipe.text_encoder
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # from here until the end the folder is unfinished
    print(f"exporting {checkpoint} for the browser into {out}", flush=True)
    files: list[str] = []
    rounding: dict[str, float] = {}

    quantized: dict[str, dict] = {}
    calibration = calibration_feeds(pipe) if weights == "int8" else {}

    def done(name: str) -> None:
        if name.endswith(".onnx") and weights == "float16":
            rounding[name] = store_weights_float16(out / name)["max_rounding"]
        elif name == "text_encoder.onnx" and weights == "int8":
            quantized[name] = store_weights_int8(out / name)
        elif name.endswith("_unet.onnx") and weights == "int8":
            quantized[name] = quantize_unet(out / name, calibration[name.removesuffix("_unet.onnx")])
            # the attention's and the embeddings' weights stay float: stored as float16, lossless for these U-Nets
            rounding[name] = store_weights_float16(out / name)["max_rounding"]
        files.append(name)
        _report(out, name)

    # 2. the text encoder and its tokenizer
    text_inputs = text_encoder_inputs(encoder, ["red apple", ""])
    export_onnx(TextEncoderGraph(encoder.model), text_inputs, out / "text_encoder.onnx", "text_embeds")
    done("text_encoder.onnx")
    for path in export_tokenizer(encoder, out / "tokenizer"):
        done(str(path.relative_to(out)))

    # 3. the U-Nets and their schedules
    stages = {}
    for stage, unet in (("base", pipe.base_unet), ("sr", pipe.sr_unet)):
        if unet is None:
            continue
        graph = BaseUNetGraph(unet) if stage == "base" else SRUNetGraph(unet)
        export_onnx(graph, unet_inputs(stage, unet, encoder.dim, encoder.max_length), out / f"{stage}_unet.onnx",
                    "model_out")
        done(f"{stage}_unet.onnx")
        diffusion = getattr(config, stage)
        betas = make_betas(diffusion.schedule, diffusion.num_timesteps)  # as the pipeline makes them
        schedule = schedule_json(stage, diffusion, betas, alpha_bars(betas), config.defaults)
        atomic_write_text(out / f"schedule_{stage}.json", json.dumps(schedule) + "\n")
        done(f"schedule_{stage}.json")
        stages[stage] = {"model": f"{stage}_unet.onnx", "schedule": f"schedule_{stage}.json",
                         "image_size": IMAGE_SIZES[stage], "self_conditioned": is_self_conditioned(stage, unet),
                         **graph_signature(out / f"{stage}_unet.onnx")}
    atomic_write_text(out / "pipeline.json", config.to_json())
    done("pipeline.json")

    # 4. the manifest, last: its presence says the export is complete
    manifest = {
        "format": "imagen-web",
        "version": EXPORT_VERSION,
        "opset": OPSET,
        "checkpoint": str(checkpoint),
        "fingerprint": fingerprint,
        # float16: stored so, computed in float32; max_rounding is the largest change to any weight (0: lossless).
        # int8: what was quantized, per model (onnx_int8)
        "weights": {"storage": weights, "max_rounding": rounding, **({"int8": quantized} if quantized else {})},
        "text_encoder": {"model": "text_encoder.onnx", "tokenizer": "tokenizer/", "name": encoder.name,
                         "max_length": encoder.max_length, "dim": encoder.dim,
                         **graph_signature(out / "text_encoder.onnx")},
        "stages": stages,
        "defaults": json.loads(config.to_json())["defaults"],
        # the drawing styles the page offers, and the one a caption that names none is drawn in
        "styles": list(config.styles), "default_style": config.default_style,
        "files": {name: (out / name).stat().st_size for name in files},
    }
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    _report(out, MANIFEST_NAME)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagen.export_web", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the pipeline checkpoint folder")
    p.add_argument("--out", type=Path, help=f"the folder to write (default: {DEFAULT_OUT_ROOT}/<checkpoint name>, "
                                            "-int8 or -float32 added for those weights)")
    p.add_argument("--force", action="store_true", help="export again even if the folder is up to date")
    p.add_argument("--weights", choices=WEIGHTS, default=DEFAULT_WEIGHTS,
                   help=f"how the files store the weights (default: {DEFAULT_WEIGHTS}): int8 runs the U-Nets' "
                        "convolutions in int8, faster in the browser, and stores the text encoder in int8; float16 "
                        "computes in float32 as trained from half the bytes; float32 is as trained")
    args = p.parse_args(argv)
    out = args.out or default_out(args.checkpoint, args.weights)
    try:
        manifest = export_web(args.checkpoint, out, force=args.force, weights=args.weights)
    except (ExportError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum(manifest["files"].values()) / 1e6
    print(f"{out}: {len(manifest['files'])} files, {size:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
