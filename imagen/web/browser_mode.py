"""The browser mode of the demo: a page at /browser whose visitor's browser runs the whole cascade
(onnxruntime-web), while this server only serves files. Added to the Gradio app's own server.

    GET /browser                         the page (imagen/web/static/browser.html)
    GET /browser/static/<file>           its ES modules: browser.js, sampler.js, tokenizer.js
    GET /browser/setup.json              where the runtime and the models are, or why they are not
    GET /browser/vendor/<version>/<file> onnxruntime-web (python -m imagen.web_runtime)
    GET /browser/models/<hash>/<file>    the export (python -m imagen.export_web), by its fingerprint

Both the runtime and the export are made on the first setup.json request when missing (npm pack,
a few seconds; the export, 10-20 s), once; where that cannot work, setup.json says why and which
command to run, and the page offers the server instead. Every /browser response carries the
headers of cross-origin isolation, which WebAssembly threads need (SharedArrayBuffer); the files
whose URL names a version or fingerprint may be cached by the browser for good.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import threading
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute

from ..web_runtime import ORT_FILES, LazyRuntime, RememberedFailure, RuntimeUnavailable
from .serving import checkpoint_problem

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"browser.js", "sampler.js", "tokenizer.js", "styles.js", "schedule_plot.js"}
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cross-Origin-Resource-Policy": "same-origin"}
FOREVER = "public, max-age=31536000, immutable"  # URLs that name their content's version
EXPORT_COMMAND = "python -m imagen.export_web"

mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


def models_folder(checkpoint: Path, weights: str) -> Path:
    """Where the export of `checkpoint` lives: env IMAGEN_WEB_MODELS, else web/models/<checkpoint name>
    (<checkpoint name>-<weights> for other weights than the default, so that both can stay exported)."""
    from ..export_web import default_out
    return Path(os.environ.get("IMAGEN_WEB_MODELS") or default_out(checkpoint, weights))


def export_weights() -> str:
    """How the export stores its weights: env IMAGEN_WEB_WEIGHTS (int8, float16 or float32; the export
    refuses any other, and /browser says so), else the export's default (int8)."""
    from ..export_web import DEFAULT_WEIGHTS
    return os.environ.get("IMAGEN_WEB_WEIGHTS") or DEFAULT_WEIGHTS


def vendor_root() -> Path:
    """Where the runtime is unpacked: env IMAGEN_WEB_VENDOR, else web/vendor."""
    from ..web_runtime import DEFAULT_VENDOR_ROOT
    return Path(os.environ.get("IMAGEN_WEB_VENDOR") or DEFAULT_VENDOR_ROOT)


class LazyExport:
    """The checkpoint's browser export, checked (and made when missing or stale) on first use, once.
    A failure is remembered for `retry_s`, so each page load does not start an export."""

    def __init__(self, checkpoint: Path, out: Path, weights: str, retry_s: float = 60):
        self.checkpoint, self.out, self.weights = Path(checkpoint), Path(out), weights
        self._lock = threading.Lock()
        self._manifest: dict | None = None
        self._stamp: tuple | None = None
        self._failure = RememberedFailure(retry_s)
        self._fingerprint: tuple[tuple, str] | None = None  # (checkpoint stamp, its fingerprint)

    def _checkpoint_stamp(self) -> tuple:
        """Cheap stand-in for the fingerprint: the checkpoint's files' names, sizes and times."""
        return tuple(sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns)
                            for f in self.checkpoint.rglob("*") if f.is_file()))

    @property
    def handed_out(self) -> dict | None:
        """The manifest setup.json last handed out: its files are the only ones served."""
        return self._manifest

    def get(self) -> dict:
        with self._lock:  # ten first visitors at once must not start ten exports
            stamp = self._checkpoint_stamp() if self.checkpoint.exists() else None
            if self._manifest is not None and stamp == self._stamp:
                return self._manifest
            if (error := self._failure.recent()) is not None:
                raise RuntimeError(error)
            try:
                self._manifest, self._stamp = self._export(), stamp
                self._failure.forget()
            except Exception as e:  # said on the page, which then offers the server
                self._failure.remember(str(e))
                raise RuntimeError(str(e)) from e
            return self._manifest

    def problem(self) -> str | None:
        """Why there can be no export now, judged without making one; None when it is there or can be made."""
        problem = checkpoint_problem(self.checkpoint) or self._weights_problem()
        if problem is not None:
            return problem
        if (error := self._failure.recent()) is not None:
            return error
        stamp = self._checkpoint_stamp()
        if self._manifest is None or self._stamp != stamp:
            from ..export_web import ExportError, require_onnx
            try:
                require_onnx(self.weights)
            except ExportError as e:
                if not self._current_on_disk(stamp):  # a finished export of this checkpoint serves without onnx
                    return str(e)
        return None

    def _current_on_disk(self, stamp: tuple) -> bool:
        from ..export_web import checkpoint_fingerprint, is_current
        if self._fingerprint is None or self._fingerprint[0] != stamp:  # hashing the weights: once per change
            self._fingerprint = (stamp, checkpoint_fingerprint(self.checkpoint, self.weights))
        return is_current(self.out, self._fingerprint[1])

    def _weights_problem(self) -> str | None:
        from ..export_web import WEIGHTS
        if self.weights not in WEIGHTS:
            return f"IMAGEN_WEB_WEIGHTS is {self.weights!r}: it must be one of {', '.join(WEIGHTS)} (or unset)"
        return None

    def _export(self) -> dict:
        problem = checkpoint_problem(self.checkpoint) or self._weights_problem()
        if problem is not None:
            raise RuntimeError(problem)
        from ..export_web import ExportError, export_web
        try:
            return export_web(self.checkpoint, self.out, weights=self.weights)  # keeps a current export as it is
        except ExportError as e:
            raise RuntimeError(f"{e}; then run `{EXPORT_COMMAND} --checkpoint {self.checkpoint} --out {self.out} "
                               f"--weights {self.weights}`, "
                               "or restart the app") from e


def _file(path: Path, cache: str) -> FileResponse:
    if not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, headers={**ISOLATION, "Cache-Control": cache},
                        media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")


class BrowserMode:
    """The browser mode of the demo serving `checkpoint`: its routes, and whether it can be offered now
    (what the landing page, imagen/web/landing.py, asks before sending a visitor to /browser).
    `examples`: the captions the page offers to click, as the server's page does."""

    def __init__(self, checkpoint: Path, examples: list[str] | tuple[str, ...] = ()):
        self.checkpoint, self.examples = Path(checkpoint), list(examples)
        self.runtime = LazyRuntime(vendor_root())
        weights = export_weights()
        self.export = LazyExport(checkpoint, models_folder(checkpoint, weights), weights=weights)

    def prepare_in_background(self) -> threading.Thread:
        """Make the export now, in a thread, so the first visitor finds it ready (the int8 export takes
        minutes on two cores); a failure is remembered and said on the page as usual."""
        def prepare() -> None:
            with contextlib.suppress(RuntimeError):
                self.export.get()

        thread = threading.Thread(target=prepare, name="browser-export", daemon=True)
        thread.start()
        return thread

    def problems(self) -> list[str]:
        """Why /browser cannot run here now, judged cheaply (no npm run, no export made): [] when it can."""
        return [p for p in (self.runtime.problem(), self.export.problem()) if p]

    def routes(self) -> list[BaseRoute]:
        """The /browser routes, for FastAPI(routes=...): Gradio's launch(app_kwargs={"routes": ...}) puts
        them ahead of its own (its catch-alls included) before the server takes its first request."""
        return browser_router(self).routes


def browser_router(mode: BrowserMode) -> APIRouter:
    """The /browser routes of `mode`."""
    runtime, export = mode.runtime, mode.export
    router = APIRouter()

    @router.get("/browser", include_in_schema=False)
    @router.get("/browser/", include_in_schema=False)
    def page() -> FileResponse:
        return _file(STATIC / "browser.html", "no-cache")

    @router.get("/browser/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in PAGE_FILES:
            raise HTTPException(404)
        return _file(STATIC / name, "no-cache")  # revalidated: they change with the code

    @router.get("/browser/setup.json", include_in_schema=False)
    def setup() -> JSONResponse:
        answer: dict = {"problems": [], "examples": mode.examples}
        try:
            found = runtime.get()
            answer["runtime"] = {"url": f"/browser/vendor/{found.url_name}/",
                                 "files": {Path(n).name: (found.folder / Path(n).name).stat().st_size
                                           for n in ORT_FILES}}
        except RuntimeUnavailable as e:
            answer["problems"].append(f"The in-browser runtime is missing: {e}")
        try:
            manifest = export.get()
            answer["models"] = {"url": f"/browser/models/{manifest['fingerprint'][:16]}/", "manifest": manifest}
        except RuntimeError as e:
            answer["problems"].append(f"The models for the browser are missing: {e}")
        answer["ok"] = not answer["problems"]
        return JSONResponse(answer, headers={**ISOLATION, "Cache-Control": "no-store"})

    @router.get("/browser/vendor/{version}/{name}", include_in_schema=False)
    def vendor(version: str, name: str) -> FileResponse:
        found = runtime.get() if version == runtime_folder_name(runtime) else None
        if found is None or name not in {Path(n).name for n in ORT_FILES}:
            raise HTTPException(404)
        return _file(found.folder / name, FOREVER)

    @router.get("/browser/models/{fingerprint}/{name:path}", include_in_schema=False)
    def models(fingerprint: str, name: str) -> FileResponse:
        manifest = export.handed_out
        if manifest is None or fingerprint != manifest["fingerprint"][:16] or name not in manifest["files"]:
            raise HTTPException(404)
        return _file(export.out / name, FOREVER)

    return router


def runtime_folder_name(runtime: LazyRuntime) -> str:
    from ..web_runtime import runtime_folder
    return runtime_folder(runtime.vendor_root).name
