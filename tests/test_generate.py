"""The generate command on a tiny checkpoint: many captions, bad output folders and caption files,
and Ctrl-C in the middle of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imagen.generate import main

ROOT = Path(__file__).resolve().parents[1]


def test_more_captions_than_the_text_cache_holds(tmp_path, tiny_checkpoint):
    captions = [f"caption {i}" for i in range(70)]  # the text encoder caches 64
    (tmp_path / "captions.txt").write_text("\n".join(captions) + "\n")
    out = tmp_path / "out"
    assert main(["--captions", str(tmp_path / "captions.txt"), "--checkpoint", str(tiny_checkpoint), "--no-sr",
                 "--steps", "1", "--batch-size", "35", "--out", str(out), "--dtype", "float32"]) == 0
    assert len(list((out / "64").glob("*.png"))) == 70
    assert (out / "captions.txt").read_text().splitlines() == captions


def test_an_unwritable_out_folder_is_refused_before_the_model_loads(tmp_path, tiny_checkpoint, capsys):
    weights = tiny_checkpoint / "base" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # loading would fail, later and differently
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "out"
    assert main(["red apple", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} cannot be written to" in err and "U-Net" not in err


def test_a_captions_file_that_is_not_utf8_names_the_file_and_the_fix(tmp_path, tiny_checkpoint, capsys):
    captions = tmp_path / "latin1.txt"
    captions.write_bytes("café au lait\nred apple\n".encode("latin-1"))
    assert main(["--captions", str(captions), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"captions file {captions} is not UTF-8 text" in err and "byte 0xe9" in err and "iconv" in err


def _listed_and_on_disk(out: Path) -> tuple[list[str], list[str]]:
    """captions.txt read first, then the images listed: an image is written before its caption."""
    captions = (out / "captions.txt").read_text().splitlines() if (out / "captions.txt").is_file() else []
    return captions, sorted(p.name for p in (out / "64").glob("*.png")) if (out / "64").is_dir() else []


def _as_from_a_terminal() -> None:
    """Ctrl-C as from a terminal: a shell without job control starts a background job (`bash .ci/run &`)
    with SIGINT ignored, as POSIX says, and pytest's child would inherit that across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.slow
def test_ctrl_c_keeps_the_images_and_captions_txt_lists_only_them(tmp_path, tiny_checkpoint):
    captions = [f"caption {i}" for i in range(200)]
    (tmp_path / "captions.txt").write_text("\n".join(captions) + "\n")
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    err = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "imagen.generate", "--captions", str(tmp_path / "captions.txt"),
                             "--checkpoint", str(tiny_checkpoint), "--no-sr", "--steps", "20", "--batch-size", "1",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_as_from_a_terminal)
    # stderr to a file, read whenever an assertion fails: while we poll, nothing would drain a pipe.
    deadline = time.monotonic() + 300
    while True:  # at every moment, every listed caption has its image on disk
        listed, images = _listed_and_on_disk(out)
        assert len(listed) <= len(images) and listed == captions[:len(listed)]
        if len(images) >= 3:
            break
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
        err.close()
    stderr = log.read_text()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    listed, images = _listed_and_on_disk(out)
    assert 3 <= len(listed) < len(captions) and listed == captions[:len(listed)]
    # Every listed caption has its image; at most the batch being saved at the signal is not listed yet.
    assert images == [f"{i:04d}.png" for i in range(len(images))] and len(images) - len(listed) in (0, 1)
    assert f"interrupted: {len(listed)} of 200 image(s)" in stderr and f"--seed {len(listed)}" in stderr
    assert not list(out.rglob(".*.tmp"))  # no half-written file left behind


def test_an_out_of_range_threshold_is_refused_before_any_image(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    assert main(["red apple", "--checkpoint", str(tiny_checkpoint), "--threshold", "1.5", "--out", str(out)]) == 2
    assert "threshold" in capsys.readouterr().err
    assert not (out / "64").exists()
    assert main(["red apple", "--checkpoint", str(tiny_checkpoint), "--threshold", "0.7", "--no-sr",
                 "--steps", "2", "--out", str(out)]) == 0
    assert (out / "64" / "0000.png").is_file()


def test_guidance_min_t_flag_changes_the_image_and_is_range_checked(tmp_path, tiny_checkpoint, capsys):
    args = ["red apple", "--checkpoint", str(tiny_checkpoint), "--no-sr", "--steps", "4", "--guidance-scale", "4"]
    assert main([*args, "--guidance-min-t", "1001", "--out", str(tmp_path / "bad")]) == 2
    assert "guidance_min_t" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "64").exists()
    for name, min_t in (("all", "0"), ("half", "500")):
        assert main([*args, "--guidance-min-t", min_t, "--out", str(tmp_path / name)]) == 0
    from PIL import Image
    a, b = (np.asarray(Image.open(tmp_path / name / "64" / "0000.png")) for name in ("all", "half"))
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0  # the last two steps were not guided
