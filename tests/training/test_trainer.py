import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imagen.device import fast_bfloat16
from imagen.pipeline import ImagenPipeline
from imagen.train import main
from imagen.training.checkpointing import complete_checkpoints, load_checkpoint, load_latest
from imagen.training.config import TrainConfig
from imagen.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def tiny_args(run, data, cache, **extra):
    settings = {"preset": "tiny", "batch_size": 4, "log_every": 1, "save_every": 1000, "sample_every": 1000,
                "warmup_steps": 2, "steps": 10, **extra}
    args = ["--run", str(run), "--data", str(data), "--cache-dir", str(cache), "--threads", "1"]
    for k, v in settings.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def losses(run):
    return {r["step"]: r["loss"] for r in map(json.loads, (Path(run) / "log.jsonl").read_text().splitlines())}


def start(args):
    return subprocess.Popen([sys.executable, "-m", "imagen.train", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError
        time.sleep(0.05)


@pytest.mark.slow
def test_tiny_model_overfits_one_batch(tmp_path, shapes_folder):
    run = tmp_path / "run"
    assert main(tiny_args(run, shapes_folder, tmp_path / "cache", batch_size=8, steps=120, lr=3e-3,
                          lr_schedule="constant", caption_dropout=0.0)) == 0
    loss = list(losses(run).values())
    first, last = sum(loss[:10]) / 10, sum(loss[-10:]) / 10
    assert last < 0.5 * first, (first, last)
    assert (run / "samples" / "step-0000120.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("shift", [1.0, 2.0])
def test_interrupted_run_resumes_at_the_right_step_with_the_same_losses(tmp_path, shapes_folder, shift):
    cache = tmp_path / "cache"
    assert main(tiny_args(tmp_path / "straight", shapes_folder, cache, steps=16, timestep_shift=shift)) == 0
    reference = losses(tmp_path / "straight")

    run = tmp_path / "interrupted"
    proc = start(tiny_args(run, shapes_folder, cache, steps=16, timestep_shift=shift))
    wait_for(lambda: (run / "log.jsonl").is_file() and len(losses(run)) >= 5)
    proc.send_signal(signal.SIGTERM)  # as Ctrl-C or a scheduler would
    assert proc.wait(60) == 0, proc.stderr.read()
    stopped_at = load_latest(run)[1]["state"]["step"]
    assert 5 <= stopped_at < 16
    assert main(["--run", str(run), "--resume"]) == 0
    resumed = losses(run)
    assert max(resumed) == 16
    for step in range(stopped_at + 1, 17):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-5), step


@pytest.mark.slow
def test_a_resumed_run_logs_each_step_once(tmp_path, shapes_folder):
    run = tmp_path / "run"
    assert main(tiny_args(run, shapes_folder, tmp_path / "cache", steps=4, save_every=4)) == 0
    # A run killed after logging steps 5 and 6 but before saving them leaves these lines, the last
    # one cut short by the kill.
    with open(run / "log.jsonl", "a") as log:
        log.write(json.dumps({"step": 5, "loss": -1.0}) + "\n" + json.dumps({"step": 6, "loss": -1.0}) + "\n")
        log.write('{"step": 7, "lo')
    assert main(["--run", str(run), "--resume", "--steps", "8"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert all(r["loss"] > 0 for r in records)  # steps 5 and 6 as the resumed run took them


@pytest.mark.slow
def test_a_process_killed_while_saving_never_leaves_a_checkpoint_that_fails_to_load(tmp_path, shapes_folder):
    run, rng = tmp_path / "run", random.Random(0)
    args = tiny_args(run, shapes_folder, tmp_path / "cache", steps=100000, save_every=1, log_every=1000)
    for attempt in range(3):
        proc = start(args if attempt == 0 else ["--run", str(run), "--resume"])
        before = len(complete_checkpoints(run)) and load_latest(run)[1]["state"]["step"]
        wait_for(lambda before=before: (run / "checkpoints" / "latest").is_file()
                 and load_latest(run)[1]["state"]["step"] >= before + 2)
        time.sleep(rng.uniform(0, 0.3))  # land anywhere inside the save loop
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        for path in complete_checkpoints(run):  # every folder that looks complete loads
            load_checkpoint(path)
        assert load_latest(run)[1]["state"]["step"] >= before + 2


def test_a_run_that_is_still_saving_can_be_read_at_any_moment(tmp_path, monkeypatch):
    # Export (and the kill test above) read the newest checkpoint of a live run, which prunes all
    # but the newest KEEP after each save: the folder being read can vanish under the reader.
    import imagen.training.checkpointing as ck
    model = torch.nn.Linear(8, 8)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    run = tmp_path / "run"
    for step in (1, 2):
        ck.save_checkpoint(run, step, model, model.state_dict(), optimizer, {})
    real_load, reads = ck.load_checkpoint, []

    def two_saves_land_before_the_read(path):
        if not reads:  # the live run saves steps 3 and 4 between listing and reading: 1 and 2 are pruned
            for step in (3, 4):
                ck.save_checkpoint(run, step, model, model.state_dict(), optimizer, {})
        reads.append(path.name)
        return real_load(path)

    monkeypatch.setattr(ck, "load_checkpoint", two_saves_land_before_the_read)
    path, loaded = ck.load_latest(run)
    assert (path.name, loaded["state"]["step"]) == ("step-0000004", 4)
    assert reads[0] == "step-0000002"  # it had listed a checkpoint that then vanished


@pytest.mark.slow
def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, shapes_folder, monkeypatch):
    cfg = TrainConfig(**{**vars(TrainConfig()), "run": str(tmp_path / "run"), "data": str(shapes_folder),
                         "cache_dir": str(tmp_path / "cache"), "preset": "tiny", "batch_size": 4, "steps": 2,
                         "save_every": 1, "sample_every": 100})
    trainer = Trainer(cfg.validate(), resume=False)
    # mixed_precision "auto": bf16 only on a CPU with bf16 kernels (an AVX2-only one emulates it, slowly)
    assert trainer.acc.mixed_precision == ("bf16" if fast_bfloat16(torch.device("cpu")) else "no")
    trainer.train()
    import imagen.training.checkpointing as ck
    real = ck.save_file
    calls = []

    def fail_on_second(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(tensors, path)
    monkeypatch.setattr(ck, "save_file", fail_on_second)
    trainer.step = 3
    with pytest.raises(OSError):
        trainer.save()
    path, ckpt = load_latest(cfg_run := Path(cfg.run))
    assert path.name == "step-0000002" and ckpt["state"]["step"] == 2
    assert [p.name for p in complete_checkpoints(cfg_run)] == ["step-0000002", "step-0000001"]


@pytest.mark.slow
def test_export_writes_a_pipeline_that_loads_and_samples(tmp_path, shapes_folder, text_encoder):
    from imagen.export import main as export_main
    cache = tmp_path / "cache"
    assert main(tiny_args(tmp_path / "base", shapes_folder, cache, steps=3)) == 0
    assert main(tiny_args(tmp_path / "sr", shapes_folder, cache, steps=3, stage="sr", crop_size=32)) == 0
    out = tmp_path / "checkpoints" / "shapes"
    assert export_main(["--run", str(tmp_path / "base"), "--run", str(tmp_path / "sr"), "--out", str(out)]) == 0
    pipe = ImagenPipeline.from_pretrained(out, device="cpu", text_encoder=text_encoder)
    images = pipe("a red circle on white", steps=2, sr_steps=2)
    assert images.images_64[0].size == (64, 64) and images.images_256[0].size == (256, 256)
    assert pipe.config.sr is not None and pipe.config.base.prediction_type == "v_prediction"
    assert pipe.config.styles == ()  # a folder's captions name no drawing style (the emoji data's do)
    # a base run alone exports a 64 px pipeline
    assert export_main(["--run", str(tmp_path / "base"), "--out", str(tmp_path / "base-only")]) == 0
    assert ImagenPipeline.from_pretrained(tmp_path / "base-only", text_encoder=text_encoder).defaults.sr is False
    # an SR run alone takes its base stage from a pipeline checkpoint
    assert export_main(["--run", str(tmp_path / "sr"), "--out", str(tmp_path / "sr-only")]) == 2
    assert export_main(["--run", str(tmp_path / "sr"), "--base-from", str(tmp_path / "base-only"),
                        "--out", str(tmp_path / "sr-only")]) == 0
    paired = ImagenPipeline.from_pretrained(tmp_path / "sr-only", text_encoder=text_encoder)
    assert paired.config.sr is not None
    for a, b in zip(paired.base_unet.parameters(), pipe.base_unet.parameters()):
        assert torch.equal(a, b)  # the same fp16 base weights, both upcast on load


def test_bad_training_input_is_a_clear_error(tmp_path, shapes_folder, capsys):
    cache = tmp_path / "cache"
    assert main(tiny_args(tmp_path / "run", shapes_folder, cache, timestep_shift=0)) == 2
    assert "timestep_shift must be positive" in capsys.readouterr().err
    assert main(tiny_args(tmp_path / "run", tmp_path / "missing", cache)) == 2
    assert "not found" in capsys.readouterr().err
    assert main(tiny_args(tmp_path / "run", shapes_folder, cache, steps=2, save_every=1)) == 0
    assert main(tiny_args(tmp_path / "run", shapes_folder, cache, steps=2)) == 2  # would overwrite the run
    assert "--resume" in capsys.readouterr().err
    assert main(["--run", str(tmp_path / "run"), "--resume", "--lr", "0.1"]) == 2  # a different run
    assert "cannot change" in capsys.readouterr().err
    assert main(tiny_args(tmp_path / "big", shapes_folder, cache, batch_size=64)) == 2
    assert "fewer than one batch" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc"), reason="needs /proc")
def test_training_config_file_stands_in_for_flags(tmp_path, shapes_folder):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"stage": "base", "data": str(shapes_folder), "run": str(tmp_path / "run"),
                                  "preset": "tiny", "batch_size": 4, "steps": 2, "cache_dir": str(tmp_path / "c")}))
    assert main(["--config", str(config), "--steps", "3"]) == 0  # flags override the file
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["steps"] == 3 and stored["preset"] == "tiny"


def test_balanced_batches_draw_every_concept_about_as_often_and_repeat_exactly():
    import torch

    from imagen.data.balance import concept_key, concept_weights
    from imagen.training.trainer import Batches
    captions = ["waving hand, twemoji style"] + [f"waving hand, {tone} skin tone, twemoji style" for tone in
                                                  ("light", "medium-light", "medium", "medium-dark", "dark")]
    captions += ["red apple, twemoji style", "red apple, openmoji style"]
    assert concept_key(captions[3]) == "waving hand, twemoji style"
    weights = concept_weights(captions, power=1.0)
    assert weights[:6].sum() == pytest.approx(weights[6]) == pytest.approx(1 / 3)  # three concepts, equal shares
    assert torch.allclose(concept_weights(captions, power=0.0), torch.full((8,), 1 / 8, dtype=torch.float64))
    # 20 people emoji with six variants each beside 20 single-image concepts: each half gets half the draws
    people = [f"person {k}{tone}" for k in range(20) for tone in ["", *(f", {t} skin tone" for t in
                                                                     ("light", "medium-light", "medium",
                                                                      "medium-dark", "dark"))]]
    many = people + [f"object {k}" for k in range(20)]
    batches = Batches(len(many), 4, seed=0, rank=0, world=1, weights=concept_weights(many))
    counts = torch.bincount(torch.cat([batches.indices(m) for m in range(2000)]), minlength=len(many)).double()
    assert counts[:120].sum() / counts.sum() == pytest.approx(0.5, abs=0.03)  # uniform would give 120 / 140
    again = Batches(len(many), 4, seed=0, rank=0, world=1, weights=concept_weights(many))
    assert torch.equal(again.indices(1234), batches.indices(1234))  # a resumed run draws the same batch


def test_a_run_can_start_from_a_shipped_checkpoint_and_trains_with_min_snr(tmp_path, shapes_folder, text_encoder):
    import torch

    from imagen.unets import build_unet
    from tests.tiny import make_tiny_pipeline
    checkpoint = tmp_path / "start"
    make_tiny_pipeline(text_encoder, seed=3).save_pretrained(checkpoint)
    start_weights = ImagenPipeline.from_pretrained(checkpoint, device="cpu", text_encoder=text_encoder).base_unet
    cfg = TrainConfig(**{**vars(TrainConfig()), "run": str(tmp_path / "run"), "data": str(shapes_folder),
                         "cache_dir": str(tmp_path / "cache"), "preset": "tiny", "batch_size": 4, "steps": 2,
                         "init_from": str(checkpoint), "loss_weighting": "min_snr", "balance": 1.0,
                         "log_every": 1, "sample_every": 100})
    trainer = Trainer(cfg.validate(), resume=False)
    for (name, p), q in zip(trainer.ema.model.named_parameters(), start_weights.parameters()):
        assert torch.equal(p, q.float()), name  # the run starts from the checkpoint's weights
    trainer.train()
    assert len(losses(cfg.run)) == 2
    fresh = build_unet("base", "tiny", text_encoder.dim)
    assert not torch.equal(next(fresh.parameters()), next(start_weights.parameters()))
    # a checkpoint of another size is a clear error, not a silent partial load
    bad = {**vars(cfg), "run": str(tmp_path / "run2"), "preset": "cpu"}
    with pytest.raises(ValueError, match="another architecture"):
        Trainer(TrainConfig(**bad).validate(), resume=False)


@pytest.mark.slow
def test_a_time_budget_fixes_the_run_length_from_its_measured_speed(tmp_path, shapes_folder):
    run = tmp_path / "run"
    assert main(tiny_args(run, shapes_folder, tmp_path / "cache", steps=100_000, time_budget_s=25)) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["time_budget_s"] == 0  # fixed once: a resume keeps the length
    assert 50 < stored["steps"] < 100_000
    assert max(losses(run)) == stored["steps"]
    assert load_latest(run)[1]["state"]["step"] == stored["steps"]


def test_caption_variety_is_for_the_emoji_data_and_recolour_is_a_share():
    with pytest.raises(ValueError, match="needs --data emoji"):
        TrainConfig(data="my-folder", caption_variety=True).validate()
    with pytest.raises(ValueError, match="recolour must be in"):
        TrainConfig(caption_variety=True, recolour=1.5).validate()
    assert TrainConfig(caption_variety=True).validate().recolour == 0.5
    with pytest.raises(ValueError, match="tint_grey must be in"):
        TrainConfig(caption_variety=True, tint_grey=-0.1).validate()
    assert TrainConfig(caption_variety=True).validate().tint_grey == 0.0  # off unless asked
    with pytest.raises(ValueError, match="phrasings must be one of core, everyday"):
        TrainConfig(caption_variety=True, phrasings="all").validate()
    assert TrainConfig(caption_variety=True).validate().phrasings == "everyday"  # as fine-tunes 19 and 20 trained


def test_pooled_text_dropout_feeds_the_pooled_path_the_empty_caption_for_a_share_of_rows(tmp_path, shapes_folder):
    """Cross-attention reads every caption; the pooled path reads the empty caption for about the asked share
    of rows and the same caption for the others; without the setting both paths read the same."""
    with pytest.raises(ValueError, match="pooled_text_dropout must be in"):
        TrainConfig(pooled_text_dropout=1.0).validate()
    with pytest.raises(ValueError, match="for the diffusion stages"):
        TrainConfig(stage="gan", pooled_text_dropout=0.5).validate()
    shares = {}
    for p in (0.0, 0.5):
        cfg = TrainConfig(**{**vars(TrainConfig()), "run": str(tmp_path / f"run{p}"), "data": str(shapes_folder),
                             "cache_dir": str(tmp_path / "cache"), "preset": "tiny", "batch_size": 8, "steps": 1,
                             "caption_dropout": 0.0, "pooled_text_dropout": p})
        trainer = Trainer(cfg.validate(), resume=False)
        unet = getattr(trainer.model, "module", trainer.model)
        empty = trainer.empty_text[0].to(next(unet.parameters()).device)
        pooled_rows, cross_rows = [], []
        unet.add_embedding.register_forward_hook(lambda module, args, out, rows=pooled_rows: rows.append(args[0]))
        unet.register_forward_pre_hook(lambda module, args, kwargs, rows=cross_rows: rows.append(
            kwargs["encoder_hidden_states"]), with_kwargs=True)
        with torch.no_grad():
            for m in range(40):
                trainer.loss(m)
        pooled, cross = torch.cat(pooled_rows).float(), torch.cat(cross_rows).float()
        pooled_empty = (pooled - empty.float()).abs().flatten(1).amax(1) < 1e-6
        assert not ((cross - empty.float()).abs().flatten(1).amax(1) < 1e-6).any()  # cross-attention: the caption
        shares[p] = pooled_empty.float().mean().item()
        assert torch.equal(pooled[~pooled_empty], cross[~pooled_empty])  # the pooled path, else the same caption
    assert shares[0.0] == 0 and 0.4 < shares[0.5] < 0.6, shares

