"""Deploying to a Space: the files selected, README.md's front matter, the dry run's listing, and the
upload's calls, all offline (huggingface_hub's HfApi is replaced, so nothing reaches the Hub)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import huggingface_hub
import pytest

from ops import deploy_space
from ops.deploy_space import DeployError, check_front_matter, main, readme_images, runtime_files, select_files

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ["checkpoints/emoji/base/diffusion_pytorch_model.safetensors",
           "checkpoints/emoji/sr/diffusion_pytorch_model.safetensors"]


@pytest.fixture(scope="module")
def selected() -> list[str]:
    return select_files(ROOT)


@pytest.fixture(scope="module")
def sent(selected) -> list[str]:
    """What main sends: the tracked selection, and the browser mode's runtime where it is installed."""
    return selected + runtime_files(ROOT)


@pytest.fixture
def no_hub(monkeypatch):
    """Every HfApi method that talks to the Hub raises if called."""
    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was called")
    for name in ("create_repo", "upload_folder", "upload_file", "create_commit", "whoami", "repo_info"):
        monkeypatch.setattr(huggingface_hub.HfApi, name, refuse)


ROW = re.compile(r"^\s*\d[\d.]* k?M?B\s+(git|LFS/Xet)\s+(\S+)(?:\s+\((.*)\))?$")


def listed(out: str) -> dict[str, tuple[str, str]]:
    """The dry run's rows: path -> (storage, reasons)."""
    return {m[2]: (m[1], m[3] or "") for m in map(ROW.match, out.splitlines()) if m}


def tracked(under: str = "") -> list[str]:
    files = subprocess.run(["git", "ls-files", "-z", "--", under or "."], cwd=ROOT, capture_output=True,
                           check=True, text=True).stdout.split("\0")
    return [f for f in files if f and (ROOT / f).is_file()]


def test_the_selection_holds_the_app_its_package_and_weights_and_nothing_else(selected):
    for f in ["app.py", "requirements.txt", "README.md", "checkpoints/emoji/pipeline.json",
              "checkpoints/emoji/MODEL_CARD.md", *WEIGHTS]:
        assert f in selected
    package = [f for f in tracked("imagen") if "__pycache__" not in f]
    assert package and set(package) <= set(selected)  # all of the package the app imports from
    for folder in ("tests/", "benchmarks/", "ops/", "docs/", "configs/", ".ci/"):
        assert not [f for f in selected if f.startswith(folder)], folder
    assert "requirements-dev.txt" not in selected and ".gitignore" not in selected
    assert not [f for f in selected if "__pycache__" in f or f.endswith(".pyc")]


def test_nothing_under_an_ignored_folder_is_selected(selected):
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(selected),
                             capture_output=True, text=True).stdout.split()
    assert ignored == []
    for folder in ("cache/", "runs/", "eval/", "outputs/", "logs/", ".gpu-pack/", ".venv/"):
        assert not [f for f in selected if f.startswith(folder)], folder


def test_only_the_assets_readme_shows_are_selected(selected):
    shown = readme_images((ROOT / "README.md").read_text(encoding="utf-8"))
    assets = [f for f in selected if f.startswith("assets/")]
    assert assets and set(assets) == {f for f in shown if f.startswith("assets/")}
    assert len(assets) < len(tracked("assets"))
    assert readme_images('![a](./assets/x.png "t") <img src="assets/y.png"> ![b](https://e.org/z.png)') \
        == {"assets/x.png", "assets/y.png"}


def test_the_front_matter_of_this_repository_passes():
    meta = check_front_matter(ROOT)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["python_version"]


def space_copy(tmp_path: Path, readme: str | None = None) -> Path:
    """README.md, requirements.txt and app.py copied to tmp_path, README.md replaced by `readme` if given."""
    for name in ("README.md", "requirements.txt", "app.py"):
        shutil.copy2(ROOT / name, tmp_path / name)
    if readme is not None:
        (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    return tmp_path


def readme_with(old: str, new: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def test_a_wrong_sdk_version_is_named(tmp_path):
    meta = check_front_matter(ROOT)
    root = space_copy(tmp_path, readme_with(f"sdk_version: {meta['sdk_version']}", "sdk_version: 4.0.0"))
    with pytest.raises(DeployError, match=r"sdk_version: 4\.0\.0 but requirements.txt pins gradio=="):
        check_front_matter(root)


def test_a_missing_app_file_is_named(tmp_path):
    root = space_copy(tmp_path)
    (root / "app.py").unlink()
    with pytest.raises(DeployError, match="app_file: app.py does not exist"):
        check_front_matter(root)
    root = space_copy(tmp_path, readme_with("app_file: app.py\n", ""))
    with pytest.raises(DeployError, match="app_file: not set"):
        check_front_matter(root)


def test_a_readme_without_front_matter_is_refused(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    root = space_copy(tmp_path, text.split("---\n", 2)[2])
    with pytest.raises(DeployError, match="no front matter"):
        check_front_matter(root)


def test_other_fields_are_named(tmp_path):
    root = space_copy(tmp_path, readme_with("sdk: gradio", "sdk: streamlit"))
    with pytest.raises(DeployError, match="sdk: 'streamlit'"):
        check_front_matter(root)
    root = space_copy(tmp_path, readme_with('python_version: "3.11"', "python_version: 3.10"))
    with pytest.raises(DeployError, match="python_version: 3.1 is not a string"):
        check_front_matter(root)


def test_the_dry_run_lists_the_files_the_total_and_the_weights_as_lfs(capsys, no_hub, monkeypatch, sent):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["--space", "someone/imagen", "--dry-run"]) == 0
    out = capsys.readouterr().out
    rows = listed(out)
    assert list(rows) == sent
    for f in WEIGHTS:
        storage, reasons = rows[f]
        assert storage == "LFS/Xet" and "binary" in reasons and "over 10 MiB" in reasons
    assert rows["app.py"] == ("git", "") and rows["README.md"] == ("git", "")
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert f"{len(sent)} files" in total and " MB" in total
    assert "LFS/Xet rule:" in out and "dry run: nothing was sent." in out


def test_a_bad_front_matter_stops_the_dry_run(tmp_path, capsys, no_hub, monkeypatch):
    monkeypatch.setattr(deploy_space, "select_files", lambda root: ["README.md", "app.py", "requirements.txt"])
    root = space_copy(tmp_path, readme_with("sdk: gradio", "sdk: docker"))
    assert main(["--space", "someone/imagen", "--dry-run"], root=root) == 2
    captured = capsys.readouterr()
    assert "sdk: 'docker'" in captured.err and "total:" not in captured.out


class FakeHub:
    """Stands in for HfApi: records the calls and what the uploaded folder held."""
    calls: list = []
    failure: BaseException | None = None

    def __init__(self, token=None, **kwargs):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        if self.failure is not None:
            raise self.failure
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, folder_path, **kwargs):
        held = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", held, kwargs))
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/spaces/someone/imagen/commit/abc"})()


@pytest.fixture
def fake_hub(monkeypatch):
    monkeypatch.setattr(FakeHub, "calls", [])
    monkeypatch.setattr(FakeHub, "failure", None)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    return FakeHub


def test_the_upload_creates_a_gradio_space_and_sends_exactly_the_selection(fake_hub, capsys, sent):
    assert main(["--space", "someone/imagen", "--token", "hf_test"]) == 0
    (_, token), (_, space, create), (_, held, upload) = fake_hub.calls
    assert token == "hf_test" and space == "someone/imagen"
    assert create["repo_type"] == "space" and create["space_sdk"] == "gradio" and create["exist_ok"]
    assert held == sent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert upload["repo_id"] == "someone/imagen" and upload["repo_type"] == "space"
    assert upload["commit_message"].startswith(f"Deploy {head.strip()}")
    assert "uploaded: https://huggingface.co/spaces/someone/imagen/commit/abc" in capsys.readouterr().out


def test_a_missing_token_says_how_to_give_one(fake_hub, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["--space", "someone/imagen"]) == 2
    err = capsys.readouterr().err
    assert "--token" in err and "HF_TOKEN" in err and "hf auth login" in err
    assert fake_hub.calls == []


def test_a_network_failure_is_one_line(fake_hub, capsys):
    from huggingface_hub.errors import HfHubHTTPError
    http_error = HfHubHTTPError.__bases__[0]  # the HTTP client's base error: a failed connection is one
    for failure in (ConnectionError("Name or service not known"), http_error("[Errno -3] connect failed")):
        fake_hub.failure = failure
        assert main(["--space", "someone/imagen", "--token", "hf_test"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: the upload to the Space someone/imagen failed") and err.count("\n") == 1


def test_the_browser_modes_runtime_goes_along_when_it_is_installed(tmp_path):
    from imagen.web_runtime import ORT_FILES, runtime_folder
    assert runtime_files(tmp_path) == []  # not installed: nothing to send (the dry run says so)
    folder = runtime_folder(tmp_path / "web" / "vendor")
    folder.mkdir(parents=True)
    for name in ORT_FILES[:-1]:
        (folder / Path(name).name).write_bytes(b"x")
    assert runtime_files(tmp_path) == []  # half a runtime is none
    (folder / Path(ORT_FILES[-1]).name).write_bytes(b"\0asm")
    assert runtime_files(tmp_path) == sorted(f"web/vendor/{folder.name}/{Path(n).name}" for n in ORT_FILES)
