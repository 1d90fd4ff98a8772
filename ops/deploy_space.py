"""Put the web demo on a Hugging Face Space: exactly the files it needs, through the Hub's upload API.

    python -m ops.deploy_space --space USER/NAME --dry-run   # what would go, how big, what the Hub stores as LFS/Xet
    python -m ops.deploy_space --space USER/NAME             # create the Space if needed, then upload

The files come from what git tracks (`git ls-files`), filtered by INCLUDE below: the page, its
package, the shipped weights, requirements.txt, README.md (its front matter makes it a Space) and
the images README.md shows. Before anything is sent, README.md's front matter is checked against
the repository (sdk, sdk_version against requirements.txt's gradio pin, app_file, python_version).

The browser mode's runtime (onnxruntime-web, from npm: `python -m imagen.web_runtime`) is not tracked,
and a Space has no npm to fetch it: when it is installed here, its three files go too, so the Space can
send visitors to /browser; without it the listing says so and the Space serves its own page only.
The ONNX export is not sent: the Space makes it from the shipped weights on the first /browser visit.

The upload is one `HfApi.upload_folder` call from a temporary folder holding only those files. The
Hub API stores binary and large files (the weights, the images) in LFS/Xet itself, which a plain
`git push` of this repository cannot do: it has no LFS filters, and the Hub refuses binaries pushed
as plain git objects. Files on the Space that are no longer in the selection are deleted in the same
commit (the Space's .gitattributes is kept), so the Space holds what the selection holds.

The token: --token, else HF_TOKEN, else the one `hf auth login` saved. It needs write access.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# What the Space needs, as patterns over the paths git tracks (fnmatch: `*` also crosses `/`).
INCLUDE = (
    "app.py",               # the page (README's app_file)
    "requirements.txt",     # what the Space installs
    "README.md",            # its front matter makes the repository a Space
    "imagen/*",             # the package the page imports: all of it (web/, the cascade, the configs)
    "checkpoints/emoji/*",  # the shipped weights: pipeline.json, base/, sr/, MODEL_CARD.md
)
SHOWN_ASSETS = "assets/*"   # of these, only the images README.md shows (the Space renders README.md)
EXCLUDE = ("*__pycache__/*", "*.pyc")

# Which files the Hub stores as LFS/Xet. huggingface_hub does not decide it: it sends the Hub each
# file's size and first 512 bytes (lfs.UploadInfo.sample) and the Hub answers "lfs" or "regular"
# (_commit_api._fetch_upload_modes), except that empty files always go as regular. The Hub's rules,
# as it documents them: files over 10 MiB, binary files, and files matching an LFS pattern of the
# repository's .gitattributes (a new Space's default one lists the usual weight and archive
# suffixes, a few of which are below). Predicted here from the same size and sample.
LFS_MIN_BYTES = 10 * 2**20
SAMPLE_BYTES = 512
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".npy", ".npz", ".pkl", ".zip", ".gz")
LFS_RULE = ("a file over 10 MiB, a binary file (a NUL byte in the first 512 bytes, the sample huggingface_hub "
            "sends the Hub), or a file a new Space's .gitattributes sends to LFS (*" + ", *".join(LFS_SUFFIXES)
            + "); empty files go as plain git. Predicted here; the Hub decides when it receives them")

SPACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)|<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


class DeployError(Exception):
    """Something the repository or the command line must fix before anything is uploaded."""


@dataclass(frozen=True)
class PlannedFile:
    path: str               # relative to the repository root, / separated
    size: int               # bytes
    lfs: tuple[str, ...]    # why the Hub stores it as LFS/Xet; empty: a plain git blob


def git(root: Path, *args: str) -> str:
    """The output of `git ARGS` run in `root`; a DeployError if git fails."""
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise DeployError(f"git {' '.join(args[:2])} failed in {root}: {detail.strip()}") from e
    return result.stdout


def tracked_files(root: Path) -> list[str]:
    """The files git tracks in `root` that exist on disk, less any that .gitignore would ignore."""
    tracked = git(root, "ls-files", "-z").split("\0")
    ignored = set(git(root, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard").split("\0"))
    return [f for f in tracked if f and f not in ignored and (root / f).is_file()]


def readme_images(text: str) -> set[str]:
    """The relative paths of the images a README shows (Markdown `![..](path)` and HTML `<img src>`)."""
    paths = set()
    for match in IMAGE_LINK.finditer(text):
        link = (match.group(1) or match.group(2)).split("#")[0].split("?")[0]
        if "://" not in link and not link.startswith("/"):
            paths.add(link.removeprefix("./"))
    return paths


def select_files(root: Path = ROOT) -> list[str]:
    """The files the Space needs, sorted: tracked files matching INCLUDE, and the assets README.md shows."""
    readme = root / "README.md"
    shown = readme_images(readme.read_text(encoding="utf-8")) if readme.is_file() else set()

    def wanted(f: str) -> bool:
        if any(fnmatchcase(f, p) for p in EXCLUDE):
            return False
        return any(fnmatchcase(f, p) for p in INCLUDE) or (fnmatchcase(f, SHOWN_ASSETS) and f in shown)

    return sorted(f for f in tracked_files(root) if wanted(f))


def runtime_files(root: Path = ROOT) -> list[str]:
    """The browser mode's runtime files as installed under `root` (web/vendor/...), or [] when it is not."""
    from imagen.web_runtime import DEFAULT_VENDOR_ROOT, installed
    found = installed(root / DEFAULT_VENDOR_ROOT)
    return sorted(str(f.relative_to(root)) for f in found.folder.iterdir() if f.is_file()) if found else []


def read_front_matter(text: str) -> dict:
    """The YAML between the `---` lines that open a README; a DeployError if there is none."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise DeployError("README.md has no front matter: a Space needs YAML between `---` lines at its top "
                          "(sdk, sdk_version, app_file, python_version)")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise DeployError("README.md's front matter has no closing `---` line")
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as e:
        raise DeployError(f"README.md's front matter is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise DeployError("README.md's front matter is not a mapping of fields")
    return data


def gradio_pin(requirements: str) -> str | None:
    """The version in requirements.txt's `gradio==X` line, or None."""
    for line in requirements.splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep and name.strip().lower() == "gradio":
            return version.strip()
    return None


def check_front_matter(root: Path = ROOT) -> dict:
    """README.md's front matter when it describes this repository's Space; else a DeployError naming
    each field that is wrong."""
    readme = root / "README.md"
    if not readme.is_file():
        raise DeployError(f"no README.md in {root}: a Space is described by its README's front matter")
    meta = read_front_matter(readme.read_text(encoding="utf-8"))
    problems = []
    if meta.get("sdk") != "gradio":
        problems.append(f"sdk: {meta.get('sdk')!r}, but the app is a Gradio app (`sdk: gradio`)")
    requirements = root / "requirements.txt"
    pin = gradio_pin(requirements.read_text(encoding="utf-8")) if requirements.is_file() else None
    version = meta.get("sdk_version")
    if pin is None:
        problems.append("sdk_version: requirements.txt pins no gradio version (`gradio==X`) to match it against")
    elif version is None:
        problems.append(f"sdk_version: not set; requirements.txt pins gradio=={pin}")
    elif str(version) != pin:
        problems.append(f"sdk_version: {version} but requirements.txt pins gradio=={pin} "
                        "(the Space would run a gradio the app was not tested with)")
    app_file = meta.get("app_file")
    if not app_file:
        problems.append("app_file: not set (the page's script, app.py)")
    elif not (root / str(app_file)).is_file():
        problems.append(f"app_file: {app_file} does not exist")
    python_version = meta.get("python_version")
    if python_version is None:
        problems.append("python_version: not set (the Space would pick a Python of its own)")
    elif not isinstance(python_version, str):
        problems.append(f"python_version: {python_version!r} is not a string: quote it (3.10 unquoted reads as 3.1)")
    if problems:
        raise DeployError("README.md's front matter does not fit this repository:\n  - " + "\n  - ".join(problems))
    return meta


def lfs_reasons(path: Path) -> tuple[str, ...]:
    """Why the Hub will store `path` as LFS/Xet (see LFS_RULE); empty when it goes as a plain git blob."""
    size = path.stat().st_size
    if size == 0:
        return ()
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    reasons = []
    if b"\0" in sample:
        reasons.append("binary")
    if size > LFS_MIN_BYTES:
        reasons.append("over 10 MiB")
    if path.suffix.lower() in LFS_SUFFIXES:
        reasons.append(f"*{path.suffix.lower()}")
    return tuple(reasons)


def plan(root: Path, files: list[str]) -> list[PlannedFile]:
    """Each file with its size and how the Hub will store it."""
    return [PlannedFile(f, (root / f).stat().st_size, lfs_reasons(root / f)) for f in files]


def human(size: int) -> str:
    """A size in bytes as B, kB or MB (powers of 1000)."""
    if size < 1000:
        return f"{size} B"
    return f"{size / 1e3:.1f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB"


def describe(planned: list[PlannedFile]) -> str:
    """The listing a deploy prints: each file, its size and storage, then the totals and the rule."""
    rows = [f"{human(p.size):>9}  {'LFS/Xet' if p.lfs else 'git':<7}  {p.path}"
            + (f"  ({', '.join(p.lfs)})" if p.lfs else "") for p in planned]
    lfs = [p for p in planned if p.lfs]
    total = sum(p.size for p in planned)
    lfs_total = sum(p.size for p in lfs)
    return "\n".join([f"{'size':>9}  {'storage':<7}  file", *rows, "",
                      f"total: {len(planned)} files, {human(total)}; {len(lfs)} stored as LFS/Xet "
                      f"({human(lfs_total)}), {len(planned) - len(lfs)} as plain git ({human(total - lfs_total)})",
                      textwrap.fill(f"LFS/Xet rule: {LFS_RULE}.", width=110)])


def commit_message(root: Path, files: list[str]) -> str:
    """`Deploy <short commit>`, naming the files that differ on disk from that commit (they go as they are)."""
    head = git(root, "rev-parse", "--short", "HEAD").strip()
    changed = [line[3:] for line in git(root, "status", "--porcelain", "--", *files).splitlines()] if files else []
    if not changed:
        return f"Deploy {head}"
    named = ", ".join(changed) if len(changed) <= 3 else f"{len(changed)} files"
    return f"Deploy {head} with uncommitted changes to {named}"


def resolve_token(token: str | None) -> str:
    """--token, else HF_TOKEN, else the token `hf auth login` saved; a DeployError saying how to give one."""
    if token:
        return token
    from huggingface_hub import get_token
    found = get_token()
    if not found:
        raise DeployError("no Hugging Face token: pass --token TOKEN, set HF_TOKEN, or run `hf auth login` "
                          "(a token with write access, from https://huggingface.co/settings/tokens)")
    return found


def upload(space: str, root: Path, files: list[str], token: str, message: str, private: bool = False) -> str:
    """Create the Space (Gradio SDK) if it does not exist, then make its files exactly `files` in one
    upload_folder call; returns the commit's URL. The only function here that talks to the Hub."""
    from huggingface_hub import HfApi
    api = HfApi(token=token)
    api.create_repo(space, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="space-upload-") as tmp:
        for f in files:
            (Path(tmp) / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, Path(tmp) / f)
        info = api.upload_folder(repo_id=space, repo_type="space", folder_path=tmp, commit_message=message,
                                 delete_patterns="*")  # what is no longer selected leaves the Space
    return info.commit_url


def hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed request raises: HfHubHTTPError and the HTTP client's own errors (its base class),
    and OSError (connection failures, offline mode)."""
    from huggingface_hub.errors import HfHubHTTPError
    return (OSError, *HfHubHTTPError.__bases__)


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.deploy_space", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--space", required=True, help="the Space, USER/NAME (created if it does not exist)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded and stop (no token, no network)")
    p.add_argument("--private", action="store_true", help="create the Space private (an existing one is left as is)")
    p.add_argument("--token", help="a Hugging Face token with write access (default: HF_TOKEN, or `hf auth login`)")
    args = p.parse_args(argv)
    try:
        # 1. what to send, and whether README.md describes the Space that will run it
        if not SPACE_ID.match(args.space):
            raise DeployError(f"--space {args.space!r}: expected USER/NAME")
        runtime = runtime_files(root)
        files = select_files(root) + runtime
        meta = check_front_matter(root)
        if meta["app_file"] not in files:
            raise DeployError(f"app_file: {meta['app_file']} is not among the files selected for upload")
        message = commit_message(root, files)
        # 2. the listing, for the dry run and the real one alike
        print(f"Space {args.space}: sdk gradio {meta['sdk_version']}, Python {meta['python_version']}, "
              f"app_file {meta['app_file']}\ncommit message: {message}\n")
        print(describe(plan(root, files)))
        if not runtime:
            print("note: the browser mode's runtime is not installed here, so the Space will serve its own page "
                  "only; run `python -m imagen.web_runtime` first to send it along.")
        if args.dry_run:
            print("dry run: nothing was sent.")
            return 0
        # 3. the upload
        token = resolve_token(args.token)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        url = upload(args.space, root, files, token, message, private=args.private)
    except hub_errors() as e:
        detail = " ".join(str(e).split())[:300]
        print(f"error: the upload to the Space {args.space} failed ({type(e).__name__}): {detail}", file=sys.stderr)
        return 1
    print(f"uploaded: {url}\nthe Space builds from README.md and requirements.txt: "
          f"https://huggingface.co/spaces/{args.space}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
