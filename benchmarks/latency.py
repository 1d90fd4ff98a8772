"""How fast does the cascade feel? Prints one JSON line per configuration.

    python benchmarks/latency.py                                  # shipped weights, default settings
    python benchmarks/latency.py --checkpoint checkpoints/emoji --device cpu --runs 5
    python benchmarks/latency.py --levers                         # the speed levers, one line each
    python benchmarks/latency.py --instruments                    # what each page instrument costs

Fields: first_frame_s (request to the first streamed step, prompt encoding included), base_s,
sr_s, total_s (each the median of --runs after a warm-up), base_step_ms, sr_step_ms,
base_unet_ms / sr_unet_ms (the bare U-Net forwards at the same batches: both halves at the base
stage's guided steps, base_guided_steps of them, or at every step with the guidance-arithmetic
instrument; for the overhead of guidance, thresholding, the scheduler and streaming),
base_overhead_pct, sr_overhead_pct and peak_rss_mb (this process's peak resident memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagen.device import DTYPE_CHOICES, DTYPE_HELP, autocast  # noqa: E402
from imagen.pipeline import ImagenPipeline  # noqa: E402
from imagen.unets import unet_forward  # noqa: E402

PROMPT = "red apple, twemoji style"


def time_cascade(pipe: ImagenPipeline, runs: int, **overrides: object) -> dict:
    """Medians over `runs` full generations, after one warm-up."""
    records, warmup_s = [], None
    for i in range(runs + 1):
        pipe.text_encoder._cache.clear()  # a new prompt every time: encoding is part of the first frame
        start = time.perf_counter()
        first = base_end = None
        n_sr = 0
        base_timesteps = []
        for step in pipe.generate(f"{PROMPT} {i}", seed=i, **overrides):
            now = time.perf_counter()
            first = first or now - start
            if step.stage == "base":
                base_timesteps.append(step.timestep)
                base_end = now - start
            else:
                n_sr += 1
        total = time.perf_counter() - start
        warmup_s = warmup_s or total
        if i > 0:
            records.append({"first_frame_s": first, "base_s": base_end, "sr_s": total - base_end, "total_s": total,
                            "base_timesteps": base_timesteps, "n_sr": n_sr})
    med = {k: statistics.median(r[k] for r in records) for k in ("first_frame_s", "base_s", "sr_s", "total_s")}
    med["base_step_ms"] = 1000 * med["base_s"] / len(records[0]["base_timesteps"])
    med["sr_step_ms"] = 1000 * med["sr_s"] / records[0]["n_sr"] if records[0]["n_sr"] else None
    med["warmup_s"] = warmup_s  # the first request: one-time costs (and torch.compile's compilation)
    med["base_timesteps"] = records[0]["base_timesteps"]
    return med


@torch.no_grad()
def time_unet(pipe: ImagenPipeline, stage: str, batch: int, repeats: int = 10) -> float:
    """Median ms of one bare U-Net forward, at the batch the sampler runs it."""
    unet = pipe.base_unet if stage == "base" else pipe.sr_unet
    size, channels = (64 if stage == "base" else 256), unet.config.in_channels  # 6: SR or self-conditioned
    x = torch.randn(batch, channels, size, size, device=pipe.device)
    t = torch.full((batch,), 500, device=pipe.device)
    text = pipe.text_encoder.encode(["red apple"] * batch)
    labels = torch.full((batch,), 100, device=pipe.device) if stage == "sr" else None
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        with autocast(pipe.device, pipe.dtype):
            unet_forward(unet, x, t, text.text_embeds.to(pipe.device), text.text_mask.to(pipe.device), labels)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


INSTRUMENTS = ("attention", "guidance_parts")


def measure(pipe: ImagenPipeline, runs: int, label: str, **overrides: object) -> dict:
    s = pipe.settings(**{k: v for k, v in overrides.items() if k not in INSTRUMENTS})
    result = {"config": label, "threads": torch.get_num_threads(), "dtype": str(pipe.dtype).removeprefix("torch."),
              "sampler": s.sampler, "steps": s.steps, "sr_steps": s.sr_steps if s.sr else 0,
              "guidance_scale": s.guidance_scale, "guidance_min_t": s.guidance_min_t,
              "sr_guidance_scale": s.sr_guidance_scale}
    result.update(time_cascade(pipe, runs, **overrides))
    # the bare forwards the base stage ran: both halves at its guided steps, the captioned one elsewhere;
    # the guidance-arithmetic instrument runs both halves at every step (it shows each half's x0)
    both_always = bool(overrides.get("guidance_parts"))
    batches = [2 if both_always or s.guidance_at(t) != 1 else 1 for t in result.pop("base_timesteps")]
    unet_ms = {b: time_unet(pipe, "base", b) for b in set(batches)}
    result["base_guided_steps"] = batches.count(2)
    result["base_unet_ms"] = statistics.mean(unet_ms[b] for b in batches)
    result["base_overhead_pct"] = 100 * (result["base_step_ms"] / result["base_unet_ms"] - 1)
    if s.sr:
        result["sr_unet_ms"] = time_unet(pipe, "sr", 1 if s.sr_guidance_scale == 1 else 2)
        result["sr_overhead_pct"] = 100 * (result["sr_step_ms"] / result["sr_unet_ms"] - 1)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def lever_configs(pipe: ImagenPipeline) -> list[tuple[str, dict, dict]]:
    """(label, pipeline changes, sampling overrides) for each lever against the defaults."""
    d = pipe.defaults
    return [
        ("defaults", {}, {}),
        # "auto" picks one of these by the machine (imagen.device.fast_bfloat16): time both
        *[(name, {"dtype": dtype}, {}) for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
          if dtype != pipe.dtype],
        ("1 thread", {"threads": 1}, {}),
        *([("guided at every step", {}, {"guidance_min_t": 0})] if d.guidance_min_t else []),
        ("SR guided (w=4)", {}, {"sr_guidance_scale": 4.0}),
        *[(sampler, {}, {"sampler": sampler}) for sampler in ("dpm++", "ddim", "ddpm") if sampler != d.sampler],
        ("half the steps", {}, {"steps": max(1, d.steps // 2), "sr_steps": max(1, d.sr_steps // 2)}),
        ("twice the steps", {}, {"steps": d.steps * 2, "sr_steps": d.sr_steps * 2}),
        ("NCHW (no channels_last)", {"contiguous": True}, {}),
        ("torch.compile", {"compile": True}, {}),  # last: it replaces the U-Nets
    ]


def instrument_configs() -> list[tuple[str, dict, dict]]:
    """The page's instruments, each on its own, against the defaults with everything off."""
    return [
        ("defaults", {}, {}),
        ("attention maps", {}, {"attention": True}),
        ("guidance arithmetic", {}, {"guidance_parts": True}),
        ("guidance arithmetic at w=1", {}, {"guidance_parts": True, "guidance_scale": 1.0}),
        ("w=1, instruments off", {}, {"guidance_scale": 1.0}),
        ("both", {}, {"attention": True, "guidance_parts": True}),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/emoji"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    p.add_argument("--runs", type=int, default=5, help="timed runs per configuration, after one warm-up")
    p.add_argument("--levers", action="store_true", help="also time each speed lever (one JSON line each)")
    p.add_argument("--instruments", action="store_true", help="time the page's instruments (attention maps, "
                                                                 "guidance arithmetic), one JSON line each")
    args = p.parse_args()
    if not args.checkpoint.exists():
        print(f"error: no checkpoint at {args.checkpoint}", file=sys.stderr)
        return 2
    pipe = ImagenPipeline.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype)
    configs = lever_configs(pipe) if args.levers else [("defaults", {}, {})]
    configs = instrument_configs() if args.instruments else configs
    default_threads, default_dtype = torch.get_num_threads(), pipe.dtype
    for label, changes, overrides in configs:
        torch.set_num_threads(changes.get("threads", default_threads))
        pipe.dtype = changes.get("dtype", default_dtype)
        # the pipeline keeps CPU U-Nets in channels_last; the lever measures what that buys
        nhwc = pipe.device.type == "cpu" and not changes.get("contiguous")
        memory_format = torch.channels_last if nhwc else torch.contiguous_format
        for unet in (pipe.base_unet, pipe.sr_unet):
            if unet is not None:
                unet.to(memory_format=memory_format)
        if changes.get("compile"):
            pipe.base_unet = torch.compile(pipe.base_unet)
            pipe.sr_unet = torch.compile(pipe.sr_unet) if pipe.sr_unet is not None else None
        print(json.dumps(measure(pipe, args.runs, label, **overrides)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
