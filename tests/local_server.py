"""The web demo (`python app.py`) as a child process on a free localhost port: what the app tests
and the web demo benchmark both run against."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where app.py lives


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalApp:
    proc: subprocess.Popen
    url: str
    log: Path  # the server's stdout and stderr

    def wait(self, timeout: float = 120) -> None:
        """Return once the page answers; raise RuntimeError, with the log's tail, if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_app(checkpoint: Path, workdir: Path, **env: str) -> LocalApp:
    """Start app.py serving `checkpoint`, offline, with its temporary files and log under `workdir`;
    `env` adds or overrides environment variables."""
    port = free_port()
    env = {**os.environ, "IMAGEN_CHECKPOINT": str(checkpoint), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(workdir / "gradio"), "PYTHONUNBUFFERED": "1", **env}
    log = workdir / "server.log"
    with log.open("w") as out:  # the child holds its own copy of the file; ours closes here
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return LocalApp(proc, f"http://127.0.0.1:{port}/", log)


@contextmanager
def served(checkpoint: Path, timeout: float = 180, **env: str) -> Iterator[LocalApp]:
    """For a benchmark: app.py serving `checkpoint` from a temporary folder, answering; stopped on
    leaving. A server that never answers ends the benchmark with its log's tail."""
    with tempfile.TemporaryDirectory() as tmp:
        app = start_app(checkpoint, Path(tmp), **env)
        try:
            try:
                app.wait(timeout=timeout)
            except RuntimeError as e:
                sys.exit(str(e))
            yield app
        finally:
            app.stop()
