import json

import pytest
import torch

from imagen.config import PipelineConfig, Settings
from imagen.export import main as export_main
from imagen.pipeline import ImagenPipeline
from imagen.training.config import TrainConfig, config_from_args
from imagen.training.self_conditioning import SELF_CONDITION_PROB, training_input, widen_input
from imagen.training.trainer import Trainer
from imagen.unets import build_unet, is_self_conditioned, unet_forward
from tests.tiny import make_tiny_pipeline


def test_a_self_conditioned_base_takes_x0_beside_x_t():
    plain, sc = build_unet("base", "tiny", 384), build_unet("base", "tiny", 384, self_condition=True)
    assert (plain.config.in_channels, sc.config.in_channels) == (3, 6)
    assert not is_self_conditioned("base", plain) and is_self_conditioned("base", sc)
    assert not is_self_conditioned("sr", build_unet("sr", "tiny", 384))  # its 6 channels are x_t and the low-res image
    with pytest.raises(ValueError, match="base stage only"):
        build_unet("sr", "tiny", 384, self_condition=True)


def test_widening_a_plain_base_keeps_its_function_whatever_the_estimate():
    torch.manual_seed(0)
    plain, sc = build_unet("base", "tiny", 384), build_unet("base", "tiny", 384, self_condition=True)
    sc.load_state_dict(widen_input(plain.state_dict(), sc.state_dict()))
    x, t = torch.randn(2, 3, 64, 64), torch.tensor([100, 900])
    embeds, mask = torch.randn(2, 32, 384), torch.ones(2, 32, dtype=torch.bool)
    with torch.no_grad():
        a = unet_forward(plain, x, t, embeds, mask)
        b = unet_forward(sc, torch.cat([x, torch.randn_like(x)], 1), t, embeds, mask)
    assert torch.allclose(a, b, atol=1e-5)
    state = plain.state_dict()
    assert widen_input(state, build_unet("base", "tiny", 384).state_dict()) is state  # nothing to widen


def test_training_input_gives_about_half_the_rows_an_estimate_and_runs_only_those():
    x_t = torch.randn(64, 3, 8, 8)
    seen = []

    def estimate_x0(x_in, rows):
        seen.append(rows)
        assert x_in.shape == (len(rows), 6, 8, 8) and not x_in[:, 3:].any()  # the estimate sees zeros beside x_t
        return torch.full((len(rows), 3, 8, 8), 0.5)

    out = training_input(x_t, estimate_x0, torch.Generator().manual_seed(0))
    assert out.shape == (64, 6, 8, 8) and torch.equal(out[:, :3], x_t)
    with_estimate = out[:, 3:].flatten(1).eq(0.5).all(1)
    assert torch.equal(with_estimate.nonzero().squeeze(1), seen[0])  # one extra forward, on those rows alone
    assert not out[~with_estimate, 3:].any()
    assert abs(with_estimate.float().mean() - SELF_CONDITION_PROB) < 0.2


def test_each_sampling_step_sees_the_x0_the_step_before_used(text_encoder):
    torch.manual_seed(0)
    base = build_unet("base", "tiny", text_encoder.dim, self_condition=True)
    pipe = ImagenPipeline(text_encoder, base, None, PipelineConfig(sr=None, defaults=Settings(steps=4, sr=False)),
                          device="cpu")
    inputs = []
    unet = pipe.base_unet  # the pipeline samples its own prepared copy of `base`
    forward = unet.forward
    unet.forward = lambda x, *a, **k: (inputs.append(x[:, 3:].clone()), forward(x, *a, **k))[1]
    steps = list(pipe.generate("a red circle", seed=1, steps=4, guidance_scale=3.0, guidance_min_t=500))
    assert len(inputs) == 4 and not inputs[0].any()  # the first step: zeros beside x_t
    for step, seen in zip(steps, inputs[1:]):
        halves = seen.chunk(2) if seen.shape[0] == 2 else (seen,)  # a guided step: both halves the same
        for half in halves:
            assert torch.allclose(half, step.x0_pred)
    assert [x.shape[0] for x in inputs] == [2, 2, 1, 1]  # guidance at t >= 500 only, as for a plain base


@pytest.mark.slow
def test_a_plain_checkpoint_starts_a_self_conditioned_run(tmp_path, shapes_folder, text_encoder, capsys):
    checkpoint = tmp_path / "plain"
    make_tiny_pipeline(text_encoder, seed=3).save_pretrained(checkpoint)
    plain = ImagenPipeline.from_pretrained(checkpoint, device="cpu", text_encoder=text_encoder).base_unet
    cfg = TrainConfig(**{**vars(TrainConfig()), "run": str(tmp_path / "run"), "data": str(shapes_folder),
                         "cache_dir": str(tmp_path / "cache"), "preset": "tiny", "batch_size": 4, "steps": 2,
                         "init_from": str(checkpoint), "self_condition": True, "log_every": 1,
                         "sample_every": 100})
    trainer = Trainer(cfg.validate(), resume=False)
    assert "self-conditioning's input channels" in capsys.readouterr().out
    w = trainer.ema.model.conv_in.weight
    assert torch.equal(w[:, :3], plain.conv_in.weight.float()) and not w[:, 3:].any()
    trainer.train()
    assert json.loads((tmp_path / "run" / "unet_config.json").read_text())["in_channels"] == 6
    assert trainer.ema.model.conv_in.weight[:, 3:].any()  # the added input is learned
    # exported, it loads as a self-conditioned pipeline and samples
    assert export_main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "export")]) == 0
    pipe = ImagenPipeline.from_pretrained(tmp_path / "export", device="cpu", text_encoder=text_encoder)
    assert is_self_conditioned("base", pipe.base_unet)
    assert pipe("a red circle", steps=2).images_64[0].size == (64, 64)


def test_the_self_condition_flag(tmp_path):
    assert config_from_args(["--run", str(tmp_path / "a")])[0].self_condition is False
    assert config_from_args(["--run", str(tmp_path / "b"), "--self-condition"])[0].self_condition is True
    with pytest.raises(ValueError, match="base stage only"):
        config_from_args(["--run", str(tmp_path / "c"), "--self-condition", "--stage", "sr"])
