"""Reference vectors for the JavaScript sampler (imagen/web/static/sampler.js): the real Python
cascade (ImagenPipeline.generate, diffusers' schedulers, guidance, thresholding, noise augmentation,
consistency) run with a stand-in network whose formula tests/web/js/sampler.test.mjs repeats:

    out = 0.5 x_t + 0.1 mean(text_embeds) + 0.2 t / 1000 + 0.05 (c - 1)
          [+ 0.3 x0_prev for a self-conditioned base stage]
          [+ 0.25 low_res + 0.1 aug_level / 1000 for the SR stage]

Every random draw of the pipeline (x_T, DDPM's per-step noise, the augmentation noise) is replayed
from the same seeded generators and recorded, so the JavaScript loop can be fed the very same noise.

    python -m tests.web.js_reference OUT_FOLDER     # writes reference.json and reference.bin
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from imagen.config import DiffusionConfig, PipelineConfig, Settings
from imagen.diffusion import alpha_bars, make_betas
from imagen.export_web import schedule_json
from imagen.pipeline import ImagenPipeline
from imagen.samplers import SAMPLERS, make_scheduler, schedule_timesteps
from imagen.text_encoder import TextEncoder

SEED = 7
PROMPTS = ["red apple, openmoji style", "a cat face"]
CHANNEL_RAMP = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)


class StandInUNet(torch.nn.Module):
    """A U-Net's call signature around a formula simple enough to write again in JavaScript."""

    def __init__(self, stage: str, in_channels: int):
        super().__init__()
        self.stage = stage
        self.conv_in = torch.nn.Conv2d(in_channels, 1, 1)  # what ImagenPipeline prepares; never used
        self.config = SimpleNamespace(in_channels=in_channels, only_cross_attention=stage == "sr")

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: torch.Tensor | None = None, class_labels: torch.Tensor | None = None,
                return_dict: bool = False) -> tuple[torch.Tensor]:
        per_image = (-1, 1, 1, 1)
        out = (0.5 * sample[:, :3] + 0.1 * encoder_hidden_states.float().mean(dim=(1, 2)).view(per_image)
               + 0.2 * (timestep.float() / 1000).view(per_image) + 0.05 * CHANNEL_RAMP)
        if self.stage == "sr":
            out = out + 0.25 * sample[:, 3:] + 0.1 * (class_labels.float() / 1000).view(per_image)
        elif self.config.in_channels == 6:
            out = out + 0.3 * sample[:, 3:]
        return (out,)


CASES = [
    # the shipped checkpoint's kind of settings: DDPM, guidance on the noisy steps only (t >= 499, one of
    # the 4 timesteps 999, 749, 499, 249: the boundary counts), consistency
    dict(name="ddpm", batch=2, self_conditioned=False,
         settings=Settings(sampler="ddpm", steps=4, guidance_scale=3.0, guidance_min_t=499, sr_steps=3,
                           sr_guidance_scale=1.0, sr_noise_level=100, sr_consistency=True, threshold=0.7)),
    # 1000 / 6 is not whole: DDIM's step back of T // n differs from the gap between its timesteps
    dict(name="ddim", batch=1, self_conditioned=False,
         settings=Settings(sampler="ddim", steps=6, guidance_scale=4.0, sr_steps=3, sr_guidance_scale=2.0,
                           sr_noise_level=250, sr_consistency=False, threshold=0.95)),
    dict(name="dpm++", batch=1, self_conditioned=False,
         settings=Settings(sampler="dpm++", steps=6, guidance_scale=5.0, sr_steps=4, sr_guidance_scale=1.0,
                           sr_noise_level=50, sr_consistency=True, threshold=0.9)),
    dict(name="dpm++ self-conditioned eps", batch=2, self_conditioned=True, base=DiffusionConfig("linear", "epsilon"),
         settings=Settings(sampler="dpm++", steps=5, guidance_scale=2.0, guidance_min_t=300, sr=False,
                           threshold=0.95)),
]


class _Blob:
    """float32 arrays appended to one binary file, referred to by offset and length (in floats)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, x: torch.Tensor) -> dict:
        a = x.detach().float().contiguous().numpy().astype("<f4").ravel()
        self.parts.append(a)
        self.size += a.size
        return {"offset": self.size - a.size, "length": int(a.size)}


def _noise_streams(case: dict, timesteps: dict[str, list[int]]) -> list[torch.Tensor]:
    """Replay the pipeline's draws, image by image, in its order (ImagenPipeline.generate, _sr_stage)."""
    s: Settings = case["settings"]
    streams = []
    for i in range(case["batch"]):
        g = torch.Generator().manual_seed(SEED + i)
        draws = [(64, 1)]  # x_T
        if s.sampler == "ddpm":
            draws += [(64, 1) for t in timesteps["base"] if t > 0]
        if s.sr:
            draws += [(256, 1), (256, 1)]  # the augmentation noise, then x_T
            if s.sampler == "ddpm":
                draws += [(256, 1) for t in timesteps["sr"] if t > 0]
        streams.append(torch.cat([torch.randn((n, 3, size, size), generator=g).ravel() for size, n in draws]))
    return streams


def run_case(case: dict, text_encoder: TextEncoder, blob: _Blob) -> dict:
    s: Settings = case["settings"]
    base_cfg = case.get("base", DiffusionConfig("cosine", "v_prediction"))
    sr_cfg = DiffusionConfig("linear", "epsilon") if s.sr else None  # the other schedule and prediction type
    config = PipelineConfig(base=base_cfg, sr=sr_cfg, defaults=s)
    base = StandInUNet("base", 6 if case["self_conditioned"] else 3)
    pipe = ImagenPipeline(text_encoder, base, StandInUNet("sr", 6) if s.sr else None, config,
                          device="cpu", dtype="float32")
    prompts = PROMPTS[:case["batch"]]
    steps = list(pipe.generate(prompts, seed=SEED))

    stages = {"base": base_cfg, **({"sr": sr_cfg} if s.sr else {})}
    schedules = {}
    for stage, diffusion in stages.items():
        betas = make_betas(diffusion.schedule, diffusion.num_timesteps)
        schedules[stage] = schedule_json(stage, diffusion, betas, alpha_bars(betas), s)
    timesteps = {stage: [st.timestep for st in steps if st.stage == stage] for stage in stages}
    streams = _noise_streams(case, timesteps)
    # The replay must give the x_T each stage started from, or the draws are out of order.
    x_T = {stage: next(st.x_t for st in steps if st.stage == stage) for stage in stages}
    for i, stream in enumerate(streams):
        assert torch.equal(stream[:3 * 64 * 64].view(1, 3, 64, 64), x_T["base"][i:i + 1])
        if s.sr:
            at = stream.numel() - (3 * 256 * 256) * (1 + (len([t for t in timesteps["sr"] if t > 0])
                                                            if s.sampler == "ddpm" else 0))
            assert torch.equal(stream[at:at + 3 * 256 * 256].view(1, 3, 256, 256), x_T["sr"][i:i + 1])

    text = text_encoder.encode(prompts).text_embeds.float().mean(dim=(1, 2))
    uncond = text_encoder.encode_empty(len(prompts)).text_embeds.float().mean(dim=(1, 2))
    return {
        "name": case["name"],
        "batch": case["batch"],
        "self_conditioned": case["self_conditioned"],
        "settings": json.loads(json.dumps(vars(s))),
        "base": schedules["base"],
        "sr": schedules.get("sr"),
        "text_mean": text.tolist(),
        "uncond_mean": uncond.tolist(),
        "noise": [blob.add(stream) for stream in streams],
        "steps": [{"stage": st.stage, "index": st.index, "total": st.total, "timestep": st.timestep,
                   "noise_level": st.noise_level, "x0_pred": blob.add(st.x0_pred), "x_prev": blob.add(st.x_prev),
                   **({"x_t": blob.add(st.x_t)} if st.index == 0 else {})} for st in steps],
    }


def timestep_table() -> list[dict]:
    """The timesteps diffusers' schedulers visit, for many step counts (spacing and rounding)."""
    table = []
    for num_timesteps in (1000, 7):
        betas = make_betas("cosine", num_timesteps)
        for n in [n for n in sorted({*range(1, 61), 100, 250, 333, 999, 1000}) if n <= num_timesteps]:
            table.append({"num_timesteps": num_timesteps, "steps": n,
                          **{name: schedule_timesteps(make_scheduler(name, betas), n) for name in SAMPLERS}})
    return table


def write_reference(folder: Path, text_encoder: TextEncoder) -> Path:
    """Write reference.json (+ reference.bin) into `folder` and return the JSON's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    blob = _Blob()
    cases = [run_case(case, text_encoder, blob) for case in CASES]
    np.concatenate(blob.parts).tofile(folder / "reference.bin")
    reference = {"binary": "reference.bin", "timesteps": timestep_table(), "cases": cases}
    (folder / "reference.json").write_text(json.dumps(reference))
    return folder / "reference.json"


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(write_reference(Path(sys.argv[1] if len(sys.argv) > 1 else "js-reference"), TextEncoder()))
