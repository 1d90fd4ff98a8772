"""The JavaScript runtime the browser mode needs, from the npm registry: onnxruntime-web's WebAssembly
build, unpacked into an ignored folder the app serves. Nothing is fetched from a CDN at run time.

    python -m imagen.web_runtime            # -> web/vendor/onnxruntime-web-<version>/

`npm pack` downloads the pinned package's tarball (npm's own cache and proxy settings apply); its
sha512 is checked against the pinned integrity, and only the three files the page loads are kept.
The app runs the same step on the first browser-mode request when the files are missing; without
npm (or offline) it says so and the page offers the server instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write

ORT_PACKAGE = "onnxruntime-web"
ORT_VERSION = "1.31.1"
# npm's integrity for the tarball of that version: a mirror or cache cannot hand us other files.
ORT_INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
# The WebAssembly-only ES module build (no WebGL/WebGPU code), the threaded SIMD glue it imports and
# its binary: 15 MB of the package's 150.
ORT_FILES = ("dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm")
DEFAULT_VENDOR_ROOT = Path("web/vendor")
NPM_TIMEOUT_S = 180
SETUP_COMMAND = "python -m imagen.web_runtime"


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot be installed: npm is missing, offline, or handed over other bytes."""


@dataclass(frozen=True)
class Runtime:
    folder: Path  # holds the ORT_FILES by their base names

    @property
    def url_name(self) -> str:
        return self.folder.name  # versioned, so browsers may cache its files for good


def runtime_folder(vendor_root: Path = DEFAULT_VENDOR_ROOT) -> Path:
    return Path(vendor_root) / f"{ORT_PACKAGE}-{ORT_VERSION}"


def installed(vendor_root: Path = DEFAULT_VENDOR_ROOT) -> Runtime | None:
    folder = runtime_folder(vendor_root)
    if all((folder / Path(name).name).is_file() for name in ORT_FILES):
        return Runtime(folder)
    return None


def _check_integrity(tarball: Path) -> None:
    algorithm, expected = ORT_INTEGRITY.split("-", 1)
    h = hashlib.new(algorithm)
    with open(tarball, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if base64.b64encode(h.digest()).decode() != expected:
        raise RuntimeUnavailable(f"{tarball.name} does not match the pinned {ORT_PACKAGE}@{ORT_VERSION} integrity")


def install(vendor_root: Path = DEFAULT_VENDOR_ROOT, npm: str | None = None) -> Runtime:
    """Install the runtime into `vendor_root` (kept when already there) and return it."""
    if (found := installed(vendor_root)) is not None:
        return found
    npm = npm or shutil.which("npm")
    if npm is None:
        raise RuntimeUnavailable(f"npm is not installed: the browser mode's runtime ({ORT_PACKAGE}) comes from the npm "
                            f"registry. Install Node.js and npm, then run `{SETUP_COMMAND}`.")
    folder = runtime_folder(vendor_root)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = subprocess.run([npm, "pack", f"{ORT_PACKAGE}@{ORT_VERSION}", "--silent"], cwd=tmp,
                                    capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeUnavailable(f"`npm pack {ORT_PACKAGE}@{ORT_VERSION}` got no answer in {NPM_TIMEOUT_S} s "
                                "(offline?)") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RuntimeUnavailable(f"`npm pack {ORT_PACKAGE}@{ORT_VERSION}` failed (offline, or no registry?): "
                                + " / ".join(tail))
        _check_integrity(tarballs[0])
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarballs[0]) as tar:
            for name in ORT_FILES:  # named members only: the tarball's paths never choose where we write
                member = tar.extractfile(f"package/{name}")
                if member is None:
                    raise RuntimeUnavailable(f"{ORT_PACKAGE}@{ORT_VERSION} has no {name}")
                atomic_write(folder / Path(name).name, lambda tmp_path, m=member: tmp_path.write_bytes(m.read()))
    return Runtime(folder)


class RememberedFailure:
    """The last failure of something slow to try (npm, an export), said again without retrying for
    `retry_s`, so a broken setup does not cost every page load another try."""

    def __init__(self, retry_s: float):
        self.retry_s = retry_s
        self._error: str | None = None
        self._at = 0.0

    def recent(self) -> str | None:
        """The failure, while it is younger than `retry_s`; else None (time to try again)."""
        return self._error if self._error is not None and time.monotonic() - self._at < self.retry_s else None

    def remember(self, error: str) -> None:
        self._error, self._at = error, time.monotonic()

    def forget(self) -> None:
        self._error = None


class LazyRuntime:
    """The runtime for the app: installed on first use, once; a failure is remembered (and said) for
    `retry_s`, so an offline server does not wait on npm at every page load."""

    def __init__(self, vendor_root: Path = DEFAULT_VENDOR_ROOT, retry_s: float = 300):
        self.vendor_root = Path(vendor_root)
        self._lock = threading.Lock()
        self._failure = RememberedFailure(retry_s)

    def problem(self) -> str | None:
        """Why the runtime cannot be had now, judged without running npm; None when it is installed or
        npm can try (a failed try is remembered and said here for `retry_s`)."""
        if installed(self.vendor_root) is not None:
            return None
        if (error := self._failure.recent()) is not None:
            return error
        if shutil.which("npm") is None:
            return f"npm is not installed, and the runtime ({ORT_PACKAGE}) is not in {runtime_folder(self.vendor_root)}"
        return None

    def get(self) -> Runtime:
        if (found := installed(self.vendor_root)) is not None:
            return found
        with self._lock:
            if (error := self._failure.recent()) is not None:
                raise RuntimeUnavailable(error)
            try:
                return install(self.vendor_root)
            except (RuntimeUnavailable, OSError) as e:
                self._failure.remember(str(e))
                raise RuntimeUnavailable(str(e)) from e


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=SETUP_COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--vendor", type=Path, default=DEFAULT_VENDOR_ROOT, help="the folder to unpack into")
    args = p.parse_args(argv)
    try:
        runtime = install(args.vendor)
    except RuntimeUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in runtime.folder.iterdir()) / 1e6
    print(f"{runtime.folder}: {ORT_PACKAGE}@{ORT_VERSION}, {len(ORT_FILES)} files, {size:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
