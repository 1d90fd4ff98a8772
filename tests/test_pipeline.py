import json
import warnings

import numpy as np
import pytest
import torch

from imagen.device import fast_bfloat16, resolve_dtype
from imagen.pipeline import CheckpointError, ImagenPipeline, PromptTruncatedWarning
from imagen.samplers import SAMPLERS


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_both_stages_and_streams_records_in_order(tiny_pipeline, sampler):
    steps = list(tiny_pipeline.generate(["red apple", "cat face"], seed=0, sampler=sampler, steps=3, sr_steps=2))
    assert [(s.stage, s.index, s.total) for s in steps] == [
        ("base", 0, 3), ("base", 1, 3), ("base", 2, 3), ("sr", 0, 2), ("sr", 1, 2)]
    base, sr = steps[:3], steps[3:]
    assert all(s.x_t.shape == s.x0_pred.shape == s.x_prev.shape == (2, 3, 64, 64) for s in base)
    assert all(s.x_t.shape == s.x0_pred.shape == s.x_prev.shape == (2, 3, 256, 256) for s in sr)
    # each step starts from where the previous one ended; the first from pure noise
    assert all(torch.equal(a.x_prev, b.x_t) for a, b in zip(steps[:2], steps[1:3]))
    assert abs(steps[0].x_t.std().item() - 1) < 0.1 and abs(steps[3].x_t.std().item() - 1) < 0.1
    # timesteps run from pure noise towards clean, within each stage
    for stage in (base, sr):
        ts = [s.timestep for s in stage]
        assert ts == sorted(ts, reverse=True) and ts[0] == 999
    assert all(s.x0_pred.abs().max() <= 1.0 for s in steps)  # dynamic thresholding
    assert [s.is_last for s in steps] == [False, False, True, False, True]


def test_blocking_call_returns_images_of_both_sizes(tiny_pipeline):
    out = tiny_pipeline(["red apple", "sun"], seed=3)
    assert [im.size for im in out.images_64] == [(64, 64)] * 2
    assert [im.size for im in out.images_256] == [(256, 256)] * 2
    assert tiny_pipeline("red apple", sr=False).images_256 is None


def test_same_seed_same_image_and_independent_of_batch(tiny_pipeline):
    a = tiny_pipeline(["red apple", "cat face"], seed=5)
    b = tiny_pipeline(["red apple", "cat face"], seed=5)
    c = tiny_pipeline(["cat face"], seed=6)  # image 1 of the first call used seed 5 + 1
    d = tiny_pipeline(["red apple", "cat face"], seed=9)
    px = [np.asarray(im) for im in a.images_256]
    assert np.array_equal(px[0], np.asarray(b.images_256[0]))
    # the same noise; only float rounding differs between batch sizes (at most one grey level)
    assert np.abs(px[1].astype(int) - np.asarray(c.images_256[0]).astype(int)).max() <= 1
    assert not np.array_equal(px[0], np.asarray(d.images_256[0]))


def test_ddpm_draws_fresh_noise_from_the_seed(tiny_pipeline):
    a = tiny_pipeline("red apple", seed=1, sampler="ddpm", sr=False).images_64[0]
    b = tiny_pipeline("red apple", seed=1, sampler="ddpm", sr=False).images_64[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def count_base_batches(pipe, monkeypatch) -> list[int]:
    """From now on, the batch size of every base U-Net forward, in order."""
    batches = []
    forward = pipe.base_unet.forward

    def counting_forward(x, *args, **kwargs):
        batches.append(len(x))
        return forward(x, *args, **kwargs)
    monkeypatch.setattr(pipe.base_unet, "forward", counting_forward)
    return batches


def test_guidance_scale_one_runs_only_the_conditional_half(tiny_pipeline, monkeypatch):
    batches = count_base_batches(tiny_pipeline, monkeypatch)
    list(tiny_pipeline.generate(["red apple"], guidance_scale=1.0, sr=False))
    list(tiny_pipeline.generate(["red apple"], guidance_scale=4.0, sr=False))
    assert batches == [1, 1, 1, 2, 2, 2]


def test_guidance_interval_guides_only_the_high_noise_steps(tiny_pipeline, monkeypatch):
    # 4 ddpm steps visit t = 999, 749, 499, 249: guidance_min_t = 500 guides the first two only.
    full = list(tiny_pipeline.generate(["red apple"], seed=3, guidance_scale=4.0, steps=4, sr=False))
    plain = list(tiny_pipeline.generate(["red apple"], seed=3, guidance_scale=1.0, steps=4, sr=False))
    batches = count_base_batches(tiny_pipeline, monkeypatch)
    part = list(tiny_pipeline.generate(["red apple"], seed=3, guidance_scale=4.0, steps=4, sr=False,
                                       guidance_min_t=500))
    assert [s.timestep for s in part] == [999, 749, 499, 249]
    assert batches == [2, 2, 1, 1]  # the caption-free half is skipped where guidance is off
    for a, b in zip(part[:2], full[:2]):  # guided steps: the fully guided run's
        torch.testing.assert_close(a.x_prev, b.x_prev)
    assert not torch.allclose(part[-1].x_prev, full[-1].x_prev)
    assert not torch.allclose(part[-1].x_prev, plain[-1].x_prev)
    # an unguided step's x0 is the captioned half's alone
    parts = list(tiny_pipeline.generate(["red apple"], seed=3, guidance_scale=4.0, steps=4, sr=False,
                                        guidance_min_t=500, guidance_parts=True))
    torch.testing.assert_close(parts[-1].x0_pred, parts[-1].x0_cond.clamp(-1, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parts[-1].x_prev, part[-1].x_prev, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("value", [-1, 1001, 2.5, True, "500"])
def test_guidance_min_t_out_of_range_is_a_clear_error(tiny_pipeline, value):
    with pytest.raises(ValueError, match="guidance_min_t must be a whole number in \\[0, 1000\\]"):
        tiny_pipeline.settings(guidance_min_t=value)


def test_save_then_load_gives_identical_images(tiny_pipeline, tmp_path, text_encoder):
    tiny_pipeline.save_pretrained(tmp_path / "ckpt")
    loaded = ImagenPipeline.from_pretrained(tmp_path / "ckpt", device="cpu", dtype="float32", text_encoder=text_encoder)
    a, b = tiny_pipeline("red apple", seed=2), loaded("red apple", seed=2)
    assert np.array_equal(np.asarray(a.images_64[0]), np.asarray(b.images_64[0]))
    assert np.array_equal(np.asarray(a.images_256[0]), np.asarray(b.images_256[0]))
    assert loaded.defaults == tiny_pipeline.defaults
    assert not list(tmp_path.glob(".ckpt*"))  # the temporary folder was swapped into place


def test_half_precision_release_loads_and_samples(tiny_pipeline, tmp_path, text_encoder):
    tiny_pipeline.save_pretrained(tmp_path / "release", half=True)
    weights = tmp_path / "release" / "base" / "diffusion_pytorch_model.safetensors"
    from safetensors import safe_open
    with safe_open(weights, "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    loaded = ImagenPipeline.from_pretrained(tmp_path / "release", device="cpu", text_encoder=text_encoder)
    assert loaded("red apple").images_256[0].size == (256, 256)


def test_bfloat16_runs(text_encoder):
    from tests.tiny import make_tiny_pipeline
    pipe = make_tiny_pipeline(text_encoder, dtype="bfloat16")
    assert pipe("red apple").images_256[0].size == (256, 256)


def test_auto_dtype_is_bfloat16_only_where_the_cpu_has_bfloat16_kernels(tiny_checkpoint, text_encoder):
    # An AVX2-only CPU emulates bfloat16 (7x float32's time for the cascade): "auto", the default
    # everywhere, must fall back to float32 there and keep bfloat16 where oneDNN has the kernels.
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    expected = torch.bfloat16 if native else torch.float32
    assert fast_bfloat16(torch.device("cpu")) == native
    assert resolve_dtype("auto", torch.device("cpu")) == expected
    loaded = ImagenPipeline.from_pretrained(tiny_checkpoint, device="cpu", text_encoder=text_encoder)
    assert loaded.dtype == expected
    # an explicit dtype is kept either way, and a wrong one is a clear error that names the choices
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="'auto', 'float32', 'bfloat16'"):
        resolve_dtype("float16", torch.device("cpu"))


@pytest.mark.parametrize("overrides,match", [
    ({"steps": 0}, "steps"), ({"sr_steps": 1001}, "sr_steps"), ({"sampler": "euler"}, "sampler"),
    ({"guidance_scale": -1}, "guidance_scale"), ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"threshold": 1.5}, "threshold"), ({"colour": "red"}, "unknown setting"),
    ({"sr_consistency": "yes"}, "sr_consistency"),
])
def test_bad_settings_are_clear_errors(tiny_pipeline, overrides, match):
    with pytest.raises(ValueError, match=match):
        next(tiny_pipeline.generate("red apple", **overrides))


@pytest.mark.parametrize("prompts", ["", "   ", [], ["ok", ""]])
def test_empty_prompt_is_a_clear_error(tiny_pipeline, prompts):
    with pytest.raises(ValueError, match="prompt"):
        next(tiny_pipeline.generate(prompts))


def test_overlong_prompt_is_truncated_with_a_warning(tiny_pipeline):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tiny_pipeline("a red apple " * 50, sr=False)
    assert out.images_64[0].size == (64, 64)
    assert any(issubclass(w.category, PromptTruncatedWarning) for w in caught)
    assert tiny_pipeline.truncated(["a red apple " * 50, "pear"]) == [True, False]


def test_sr_requested_without_an_sr_stage(text_encoder):
    from tests.tiny import make_tiny_pipeline
    pipe = make_tiny_pipeline(text_encoder, sr=False)
    assert pipe("red apple").images_256 is None
    with pytest.raises(ValueError, match="no super-resolution stage"):
        next(pipe.generate("red apple", sr=True))


def test_super_resolve_alone(tiny_pipeline):
    steps = list(tiny_pipeline.super_resolve(torch.zeros(1, 3, 64, 64), ["sun"], sr_steps=2))
    assert [s.stage for s in steps] == ["sr", "sr"] and steps[-1].x_prev.shape == (1, 3, 256, 256)
    with pytest.raises(ValueError, match="shape"):
        next(tiny_pipeline.super_resolve(torch.zeros(1, 3, 32, 32), ["sun"]))


def test_missing_incomplete_and_corrupt_checkpoints(tiny_checkpoint, tmp_path, text_encoder):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        ImagenPipeline.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="pipeline.json is missing"):
        ImagenPipeline.from_pretrained(tmp_path / "empty")
    weights = tiny_checkpoint / "sr" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    with pytest.raises(CheckpointError, match="could not load the U-Net"):
        ImagenPipeline.from_pretrained(tiny_checkpoint, device="cpu", text_encoder=text_encoder)
    (tiny_checkpoint / "pipeline.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid pipeline config"):
        ImagenPipeline.from_pretrained(tiny_checkpoint)


def test_absent_device_is_a_clear_error(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ImagenPipeline.from_pretrained(tiny_checkpoint, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        ImagenPipeline.from_pretrained(tiny_checkpoint, device="tpu7")


@pytest.mark.parametrize("text, match", [
    ("[1, 2, 3]", "expected a JSON object .* got a list"),
    ("null", "expected a JSON object .* got null"),
    ('{"defaults": {"steps": "abc"}}', "defaults: steps must be a whole number between 1 and 1000, got 'abc'"),
    ('{"defaults": {"steps": 5000}}', "defaults: steps must be a whole number between 1 and 1000, got 5000"),
    ('{"defaults": {"sr": "false"}}', "defaults: sr must be true or false"),
    ('{"defaults": {"colour": "red"}}', r"defaults: unknown setting\(s\) \['colour'\]"),
    ('{"base": [1]}', "'base' must be a JSON object, got a list"),
    ('{"base": {"num_timesteps": "many"}}', "base: num_timesteps must be a whole number"),
    ('{"sr": null, "defaults": {"sr": true}}', "defaults: sr is true but the checkpoint has no super-resolution stage"),
    ('{"max_length": true}', "max_length must be a whole number"),
    ('{"styles": "twemoji style"}', "styles must be a list of style names"),
    ('{"styles": ["twemoji style", ""]}', "styles must be a list of style names"),
    ('{"styles": ["twemoji style"], "default_style": "openmoji style"}', "default_style must be one of the styles"),
])
def test_a_parseable_but_wrong_pipeline_json_is_one_clear_checkpoint_error(tiny_checkpoint, text, match):
    (tiny_checkpoint / "pipeline.json").write_text(text)
    with pytest.raises(CheckpointError, match=f"pipeline.json is not a valid pipeline config: {match}"):
        ImagenPipeline.from_pretrained(tiny_checkpoint, device="cpu")


def test_a_checkpoint_naming_a_missing_text_encoder_is_a_checkpoint_error(tiny_checkpoint, tmp_path):
    config = json.loads((tiny_checkpoint / "pipeline.json").read_text())
    (tiny_checkpoint / "pipeline.json").write_text(json.dumps({**config, "text_encoder": str(tmp_path / "gone")}))
    with pytest.raises(CheckpointError, match="names a text encoder that cannot be loaded: .* no folder at"):
        ImagenPipeline.from_pretrained(tiny_checkpoint, device="cpu")


def test_the_pipeline_draws_more_captions_than_the_text_cache_holds(tiny_pipeline):
    prompts = [f"caption {i}" for i in range(tiny_pipeline.text_encoder._cache_size + 6)]
    assert len(tiny_pipeline.truncated(prompts)) == len(prompts)
    steps = list(tiny_pipeline.generate(prompts, steps=1, sr=False, guidance_scale=1.0))
    assert steps[-1].x_prev.shape == (len(prompts), 3, 64, 64)


def test_the_styles_a_checkpoint_names_survive_saving_and_loading(tiny_pipeline, tmp_path):
    from dataclasses import replace
    tiny_pipeline.config = replace(tiny_pipeline.config, styles=("openmoji style", "twemoji style"),
                                   default_style="openmoji style")
    tiny_pipeline.save_pretrained(tmp_path / "styled")
    config = ImagenPipeline.from_pretrained(tmp_path / "styled", device="cpu").config
    assert config.styles == ("openmoji style", "twemoji style") and config.default_style == "openmoji style"


def test_the_pipeline_never_changes_the_modules_it_is_handed(text_encoder):
    # a training run hands its live EMA model to a preview pipeline at every sample grid
    from imagen.config import PipelineConfig, Settings
    from imagen.unets import build_unet
    base = build_unet("base", "tiny", text_encoder.dim).train()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    pipe = ImagenPipeline(text_encoder, base, None, PipelineConfig(sr=None, defaults=Settings(steps=2, sr=False)),
                          device="cpu")
    list(pipe.generate("red apple", seed=0))
    assert base.training and base.conv_in.weight.requires_grad  # still as the caller left it
    assert base.conv_in.weight.is_contiguous()  # not converted to channels-last
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    assert pipe.base_unet is not base and not pipe.base_unet.training


def test_settings_go_in_whole_and_overrides_apply_on_top(tiny_pipeline):
    settings = tiny_pipeline.settings(steps=2, sr=False)
    steps = list(tiny_pipeline.generate("red apple", seed=0, settings=settings))
    assert [s.index for s in steps] == [0, 1] and {s.stage for s in steps} == {"base"}
    steps = list(tiny_pipeline.generate("red apple", seed=0, settings=settings, steps=3))
    assert len(steps) == 3
    with pytest.raises(ValueError, match="steps"):
        list(tiny_pipeline.generate("red apple", settings=settings, steps=0))
