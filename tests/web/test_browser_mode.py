"""The /browser routes (imagen/web/browser_mode.py) in-process: what setup.json says when the runtime
or the weights are missing, the isolation headers, which files are served and how long they may be
cached; and the runtime installer's refusals (imagen/web_runtime.py). The page itself runs in Chromium
in test_browser_cascade.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware import Middleware

from imagen.web.browser_mode import FOREVER, ISOLATION, BrowserMode
from imagen.web.landing import COOKIE, LandingMiddleware
from imagen.web_runtime import ORT_FILES, RuntimeUnavailable, install, runtime_folder
from tests.tiny import make_tiny_pipeline


def client(checkpoint: Path, tmp_path: Path, monkeypatch, runtime: bool, landing: bool = False) -> TestClient:
    """The /browser routes in front of a stand-in for Gradio's; with `landing`, behind the landing
    middleware, as app.py launches them."""
    vendor = tmp_path / "vendor"
    if runtime:  # stand-in files where the installer would put them: this test serves, it does not run them
        folder = runtime_folder(vendor)
        folder.mkdir(parents=True)
        for name in ORT_FILES:
            (folder / Path(name).name).write_bytes(b"runtime " + name.encode())
    monkeypatch.setenv("IMAGEN_WEB_VENDOR", str(vendor))
    monkeypatch.setenv("IMAGEN_WEB_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm-here"))  # the installer must not reach a registry
    if landing:
        mode = BrowserMode(checkpoint, ["blue banana"])
        app = FastAPI(routes=mode.routes(), middleware=[Middleware(LandingMiddleware, problems=mode.problems)])
    else:
        app = FastAPI(routes=BrowserMode(checkpoint).routes())  # as app.py hands them to Gradio's launch

    @app.get("/{path:path}")
    def catch_all(path: str) -> str:  # as Gradio's own routes would: /browser must come first
        return "gradio"

    return TestClient(app)


def not_ours(response) -> bool:
    """Refused by the /browser routes, or never reaching them (the path left /browser: the catch-all's)."""
    return response.status_code == 404 or response.text == '"gradio"'


def test_without_runtime_or_weights_setup_says_why_and_which_command(tmp_path, monkeypatch):
    c = client(tmp_path / "no-checkpoint", tmp_path, monkeypatch, runtime=False)
    page = c.get("/browser")
    assert page.status_code == 200 and "<canvas" in page.text
    assert all(page.headers[k] == v for k, v in ISOLATION.items())
    setup = c.get("/browser/setup.json")
    answer = setup.json()
    assert setup.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert answer["ok"] is False and "runtime" not in answer and "models" not in answer
    runtime_problem, models_problem = answer["problems"]
    assert "npm is not installed" in runtime_problem and "python -m imagen.web_runtime" in runtime_problem
    assert "No trained weights" in models_problem
    assert c.get("/browser/static/browser.js").headers["Cache-Control"] == "no-cache"
    assert c.get("/browser/static/browser.html").status_code == 404  # only the page's modules by that route
    assert not_ours(c.get("/browser/static/..%2Fbrowser_mode.py"))


def test_setup_exports_once_and_serves_only_the_exports_files(tmp_path, monkeypatch, text_encoder):
    checkpoint = tmp_path / "tiny"
    make_tiny_pipeline(text_encoder).save_pretrained(checkpoint)
    c = client(checkpoint, tmp_path, monkeypatch, runtime=True)
    answer = c.get("/browser/setup.json").json()
    assert answer["ok"] is True, answer["problems"]
    manifest, models = answer["models"]["manifest"], answer["models"]["url"]
    assert (tmp_path / "models" / "manifest.json").is_file()  # exported on this first request
    assert c.get("/browser/setup.json").json()["models"]["url"] == models  # and not again

    for name, size in manifest["files"].items():
        r = c.get(models + name)
        assert r.status_code == 200 and len(r.content) == size, name
        assert r.headers["Cache-Control"] == FOREVER and r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert c.get(models + "manifest.json").status_code == 404  # what setup.json hands out, no more
    assert not_ours(c.get(models + "../pipeline.json"))
    assert c.get("/browser/models/0000000000000000/pipeline.json").status_code == 404

    runtime = answer["runtime"]
    wasm = c.get(runtime["url"] + "ort-wasm-simd-threaded.wasm")
    assert wasm.headers["content-type"] == "application/wasm" and wasm.headers["Cache-Control"] == FOREVER
    assert len(wasm.content) == runtime["files"]["ort-wasm-simd-threaded.wasm"]
    assert c.get(runtime["url"] + "ort.all.min.mjs").status_code == 404
    assert c.get("/browser/vendor/onnxruntime-web-0.0.1/ort.wasm.min.mjs").status_code == 404
    assert c.get("/").text == '"gradio"'  # the rest of the site is still Gradio's


def test_an_unknown_weight_storage_is_said_on_the_page_and_nothing_is_exported(tmp_path, monkeypatch, text_encoder):
    checkpoint = tmp_path / "tiny"
    make_tiny_pipeline(text_encoder).save_pretrained(checkpoint)
    monkeypatch.setenv("IMAGEN_WEB_WEIGHTS", "int4")
    answer = client(checkpoint, tmp_path, monkeypatch, runtime=True).get("/browser/setup.json").json()
    assert answer["ok"] is False
    assert any("IMAGEN_WEB_WEIGHTS is 'int4'" in p and "int8, float16, float32" in p for p in answer["problems"]), \
        answer["problems"]
    assert not (tmp_path / "models").exists()


def test_a_space_prepares_the_export_before_the_first_visit(tmp_path, monkeypatch, text_encoder):
    checkpoint = tmp_path / "tiny"
    make_tiny_pipeline(text_encoder).save_pretrained(checkpoint)
    monkeypatch.setenv("IMAGEN_WEB_MODELS", str(tmp_path / "models"))
    BrowserMode(checkpoint).prepare_in_background().join(timeout=300)
    manifest = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert manifest["weights"]["storage"] == "int8"  # the default export
    # nothing to export: the thread ends quietly, and the page will say why
    monkeypatch.setenv("IMAGEN_WEB_MODELS", str(tmp_path / "other"))
    thread = BrowserMode(tmp_path / "no-checkpoint").prepare_in_background()
    thread.join(timeout=60)
    assert not thread.is_alive() and not (tmp_path / "other").exists()


def test_the_installer_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path):
    npm = tmp_path / "npm"  # an npm that hands over some other package
    npm.write_text("#!/bin/sh\nmkdir -p package/dist && echo x > package/dist/ort.wasm.min.mjs && "
                   "tar czf onnxruntime-web-1.31.1.tgz package\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(RuntimeUnavailable, match="does not match the pinned"):
        install(tmp_path / "vendor", npm=str(npm))
    assert not runtime_folder(tmp_path / "vendor").exists()


def test_visitors_land_on_the_browser_mode_where_it_can_run_unless_they_pick_the_server(tmp_path, monkeypatch,
                                                                                         text_encoder):
    checkpoint = tmp_path / "tiny"
    make_tiny_pipeline(text_encoder).save_pretrained(checkpoint)
    c = client(checkpoint, tmp_path, monkeypatch, runtime=True, landing=True)
    landing = c.get("/", follow_redirects=False)
    assert landing.status_code == 307 and landing.headers["location"] == "/browser"
    assert not (tmp_path / "models").exists()  # deciding is cheap: nothing was exported to decide it
    assert c.get("/browser/setup.json").json()["examples"] == ["blue banana"]

    # Picking the server is remembered; picking the browser again forgets it.
    picked = c.get("/?mode=server", follow_redirects=False)
    assert picked.text == '"gradio"' and f"{COOKIE}=server" in picked.headers["set-cookie"]
    assert c.get("/", follow_redirects=False).text == '"gradio"'
    assert c.get("/?__theme=dark", follow_redirects=False).text == '"gradio"'
    back = c.get("/browser?mode=browser", follow_redirects=False)
    assert back.status_code == 200 and "Max-Age=0" in back.headers["set-cookie"]
    assert c.get("/", follow_redirects=False).status_code == 307

    # Only a plain GET of / is sent on: Gradio's API, its other pages and other methods pass untouched.
    assert c.get("/config", follow_redirects=False).text == '"gradio"'
    assert c.post("/", follow_redirects=False).status_code == 405


def test_without_the_browser_mode_visitors_stay_on_the_servers_page(tmp_path, monkeypatch):
    c = client(tmp_path / "no-checkpoint", tmp_path, monkeypatch, runtime=False, landing=True)
    assert c.get("/", follow_redirects=False).text == '"gradio"'  # no npm, no runtime, no weights
