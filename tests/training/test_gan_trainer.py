"""The GAN trains with the diffusion stages' habits: a run folder, a log with both players' losses,
sample grids, and a run stopped at any step resumes to exactly the losses of one never stopped."""

import json

import pytest
import torch

from imagen.train import main
from imagen.training.checkpointing import load_latest
from imagen.training.config import TrainConfig
from imagen.training.gan_trainer import GanTrainer
from tests.training.test_trainer import losses, tiny_args


def gan_args(run, data, cache, **extra):
    return tiny_args(run, data, cache, stage="gan", lr=2e-3, **extra)


@pytest.mark.slow
def test_a_tiny_gan_trains_logs_both_players_and_draws_its_sample_grid(tmp_path, shapes_folder):
    run = tmp_path / "gan"
    assert main(gan_args(run, shapes_folder, tmp_path / "cache", steps=6, sample_every=6)) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(records) == 6 and {"d_loss", "g_loss", "d_real", "d_fake"} <= records[-1].keys()
    assert all(r["d_loss"] > 0 and r["g_loss"] > 0 for r in records)
    assert (run / "samples" / "step-0000006.png").is_file() and (run / "gan_config.json").is_file()
    config = json.loads((run / "gan_config.json").read_text())
    assert config["text"] == "words" and config["kernels"] == 4 and config["text_dim"] == 384


@pytest.mark.slow
def test_a_stopped_gan_run_resumes_with_the_same_losses(tmp_path, shapes_folder):
    cache = tmp_path / "cache"
    # a constant rate, so that a run of 5 steps then 8 sees the rates of a run of 8
    assert main(gan_args(tmp_path / "straight", shapes_folder, cache, steps=8, lr_schedule="constant")) == 0
    reference = losses(tmp_path / "straight")
    run = tmp_path / "stopped"
    assert main(gan_args(run, shapes_folder, cache, steps=5, save_every=5, lr_schedule="constant")) == 0
    assert load_latest(run)[1]["state"]["step"] == 5
    assert main(["--run", str(run), "--resume", "--steps", "8"]) == 0
    resumed = losses(run)
    for step in (6, 7, 8):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-5), step


def test_each_half_of_a_gan_step_moves_only_its_own_network(tmp_path, shapes_folder):
    cfg = TrainConfig(stage="gan", preset="tiny", data=str(shapes_folder), run=str(tmp_path / "run"),
                      cache_dir=str(tmp_path / "cache"), batch_size=4, steps=1, warmup_steps=1, threads=1).validate()
    trainer = GanTrainer(cfg, resume=False)
    pair = trainer.model
    before = {k: v.clone() for k, v in pair.state_dict().items()}
    calls = []
    step = trainer._step
    trainer._step = lambda loss, module: (calls.append({k: v.clone() for k, v in pair.state_dict().items()}),
                                          step(loss, module))
    trainer.optimise(1e-2)
    after_d = calls[1]  # the state when the generator's half began: the discriminator's step is done
    moved = lambda a, b, prefix: any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))  # noqa: E731
    assert moved(before, after_d, "discriminator.") and not moved(before, after_d, "generator.")
    final = pair.state_dict()
    assert moved(after_d, final, "generator.") and not moved(after_d, final, "discriminator.")


def test_gan_settings_are_checked():
    with pytest.raises(ValueError, match="gan_text must be"):
        TrainConfig(stage="gan", gan_text="sentences").validate()
    with pytest.raises(ValueError, match="gan_kernels"):
        TrainConfig(stage="gan", gan_kernels=0).validate()


@pytest.mark.slow
def test_a_gan_run_exports_beside_the_diffusion_stages_and_draws(tmp_path, shapes_folder, tiny_checkpoint, capsys):
    from imagen.export import main as export_main
    from imagen.gan.sampler import GanSampler
    run = tmp_path / "gan"
    assert main(gan_args(run, shapes_folder, tmp_path / "cache", steps=3)) == 0
    assert export_main(["--run", str(run), "--out", str(tiny_checkpoint)]) == 0
    assert (tiny_checkpoint / "base").is_dir() and (tiny_checkpoint / "gan" / "model.safetensors").is_file()
    gan = GanSampler.from_pretrained(tiny_checkpoint, device="cpu")
    assert gan(["a red circle on white"], seed=0)[0].size == (64, 64)
    assert export_main(["--run", str(run), "--out", str(tmp_path / "nowhere")]) == 2
    assert "not a pipeline checkpoint" in capsys.readouterr().err
