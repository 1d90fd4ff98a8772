"""The browser mode end to end: `python app.py` on localhost serving the shipped weights, the page at
/browser in headless Chromium running the whole cascade with onnxruntime-web. Fed the very noise the
Python pipeline draws for the same seed, it must draw the same 64 px image (and 256 px one) as
ImagenPipeline.generate, within the bounds below.

The server makes the export itself on its first /browser/setup.json (into a temporary folder here), as
it would for a user; the runtime comes from web/vendor/ (python -m imagen.web_runtime, run here when
it is missing and npm can reach a registry).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from imagen.config import DEFAULT_CHECKPOINT
from imagen.images import to_uint8
from tests.local_server import ROOT, LocalApp, start_app

from .js_reference import SEED, _noise_streams  # the noise replay draws from seed SEED

pytestmark = pytest.mark.slow  # a real server, a real export and the whole cascade in Chromium

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECKPOINT = ROOT / DEFAULT_CHECKPOINT
PROMPT = "red apple, twemoji style"
# Mean |page - Python| over the uint8 pixels. The ONNX graphs match PyTorch to ~3e-5 per call and the
# JavaScript steps match the Python ones to float32 rounding; over the cascade's steps that stays far
# under one grey level. Measured: 0.000 (64 px) and 0.002 (256 px), at most 1 level on any pixel.
MAX_MEAN_DIFF_64 = 0.25
MAX_MEAN_DIFF_256 = 0.25
NOISE_ROUTE = "**/browser/test-noise.bin"


@pytest.fixture(scope="module")
def runtime_ready() -> None:
    pytest.importorskip("playwright.sync_api", reason="needs Playwright (pip install -r requirements-dev.txt)")
    pytest.importorskip("onnx", reason="the server's export needs onnx (pip install -r requirements-dev.txt)")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    if not (CHECKPOINT / "pipeline.json").is_file():
        pytest.skip(f"the shipped weights are not at {CHECKPOINT}")
    from imagen.web_runtime import DEFAULT_VENDOR_ROOT, RuntimeUnavailable, install
    try:
        install(ROOT / DEFAULT_VENDOR_ROOT)  # kept when already there
    except RuntimeUnavailable as e:
        pytest.skip(f"the browser runtime is not installed and cannot be: {e}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, runtime_ready) -> Iterator[LocalApp]:
    root = tmp_path_factory.mktemp("browser")
    # The float16 export, whose U-Nets compute as trained: this test holds the page's sampler to Python's to
    # a fraction of a grey level. The default int8 export moves pictures by about 4 grey levels, what
    # benchmarks/browser_int8.py measures (and browser_scores.py --weights int8 scores).
    app = start_app(CHECKPOINT, root, OMP_NUM_THREADS="1", IMAGEN_WEB_MODELS=str(root / "models"),
                    IMAGEN_WEB_VENDOR=str(ROOT / "web" / "vendor"), IMAGEN_WEB_WEIGHTS="float16")
    try:
        app.wait()
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def python_cascade() -> tuple[np.ndarray, np.ndarray, bytes]:
    """What the Python pipeline draws (float32, as exported) for PROMPT and SEED, and its noise, in draw order."""
    from imagen.pipeline import ImagenPipeline
    pipe = ImagenPipeline.from_pretrained(CHECKPOINT, device="cpu", dtype="float32")
    steps = list(pipe.generate(PROMPT, seed=SEED))
    image = {stage: to_uint8(next(s.x_prev for s in reversed(steps) if s.stage == stage))[0]
             for stage in ("base", "sr")}
    timesteps = {stage: [s.timestep for s in steps if s.stage == stage] for stage in ("base", "sr")}
    (stream,) = _noise_streams({"settings": pipe.defaults, "batch": 1}, timesteps)
    torch.testing.assert_close(stream[:3 * 64 * 64].view(1, 3, 64, 64), steps[0].x_t)  # the same draws
    return image["base"], image["sr"], stream.numpy().astype("<f4").tobytes()


def canvas_pixels(page, canvas: str) -> np.ndarray:
    rgba = page.evaluate("""(id) => {
        const c = document.getElementById(id);
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
    }""", canvas)
    size = int(round((len(rgba) / 4) ** 0.5))
    return np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[..., :3]


def test_the_page_draws_the_python_pipelines_images_and_keeps_the_models(server, python_cascade):
    from playwright.sync_api import sync_playwright
    image_64, image_256, noise = python_cascade
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route(NOISE_ROUTE, lambda route: route.fulfill(body=noise, content_type="application/octet-stream"))
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)  # the site's front page leads here: this server can offer the browser mode
            assert page.url == f"{server.url}browser"
            assert page.evaluate("() => window.imagenBrowser.ready") is True, page.inner_text("#fallback")
            first = page.evaluate("() => window.imagenBrowser")
            # Cross-origin isolated, so WebAssembly runs with threads; everything came over the network once.
            assert first["isolated"] and first["threads"] >= 1
            # float16 storage: 70.5 MB of models and the 14.9 MB runtime (float32 storage was 153 MB).
            assert first["download"]["fetched"] == first["download"]["total"]
            assert 50e6 < first["download"]["total"] < 100e6
            status = page.inner_text("#status")
            assert "Ready: downloaded" in status and "MB" in status and "threads" in status

            timings = page.evaluate("""async ([prompt, seed]) => {
                const bytes = await (await fetch('/browser/test-noise.bin')).arrayBuffer();
                return window.imagenBrowser.run({prompt, seed, noise: [new Float32Array(bytes)]});
            }""", [PROMPT, SEED])
            assert timings["image64"] > 0 and timings["image256"] > timings["image64"]
            drawn_64, drawn_256 = canvas_pixels(page, "final-64"), canvas_pixels(page, "final-256")
            diff_64 = np.abs(drawn_64.astype(int) - image_64.astype(int))
            diff_256 = np.abs(drawn_256.astype(int) - image_256.astype(int))
            print(f"page vs Python: 64 px mean {diff_64.mean():.3f} max {diff_64.max()}, "
                  f"256 px mean {diff_256.mean():.3f} max {diff_256.max()}; page timings {timings}")
            assert diff_64.mean() < MAX_MEAN_DIFF_64
            assert drawn_256.shape == (256, 256, 3) and drawn_256.std() > 10  # a picture, not a blank canvas
            assert diff_256.mean() < MAX_MEAN_DIFF_256
            assert "256 px in" in page.inner_text("#timings")
            # The schedule plots, as the server's page draws them: each stage's visited steps, the last marked.
            assert page.locator("#schedules svg.schedule").count() == 2
            assert page.locator("#schedules .visited").count() == len(timings["steps"])
            assert page.locator("#schedules .now").count() == 1 and "σ =" in page.inner_text("#step")
            page.locator("#replay").fill("0")  # the first step again: its stage's marker, every step still dotted
            assert "step 1 of" in page.inner_text("#step") and page.locator("#schedules .visited").count() == len(
                timings["steps"])
            if os.environ.get("IMAGEN_SCREENSHOT"):
                page.screenshot(path=os.environ["IMAGEN_SCREENSHOT"])

            # A second visit loads every model from the browser's cache: nothing is downloaded again.
            again = context.new_page()
            again.goto(f"{server.url}browser")
            assert again.evaluate("() => window.imagenBrowser.ready") is True
            second = again.evaluate("() => window.imagenBrowser.download")
            assert second["fetched"] == 0 and second["cached"] == first["download"]["total"]
            assert "from this browser's cache" in again.inner_text("#status")
            # Bad input is said on the page, and nothing runs.
            again.locator("#prompt").fill("   ")
            again.locator("#generate").click()
            assert "Type a prompt first" in again.inner_text("#status")
            again.locator("#prompt").fill("penguin")
            again.locator("#randomize").uncheck()
            again.locator("#seed").fill("-3")
            again.locator("#generate").click()
            assert "The seed must be a whole number" in again.inner_text("#status")
            assert again.evaluate("() => window.imagenBrowser.timings") is None  # no run happened in this page

            # The prompt box as on the server's page: the style picked is added, replaced or removed there.
            assert again.locator("input[name=style]:checked").get_attribute("value") == "as typed"
            again.locator("#prompt").fill("penguin")
            again.locator("input[name=style][value='twemoji style']").check()
            assert again.locator("#prompt").input_value() == "penguin, twemoji style"
            again.locator("input[name=style][value='as typed']").check()
            assert again.locator("#prompt").input_value() == "penguin"
            again.locator("#examples button", has_text="blue banana").click()
            assert again.locator("#prompt").input_value() == "blue banana"

            # Picking the server is remembered: the front page stays the server's until the browser is picked.
            again.locator("#to-server").click()
            again.wait_for_selector("#prompt textarea")
            again.goto(server.url)
            again.wait_for_selector("#prompt textarea")
            assert "/browser" not in again.url
            again.locator("#to-browser").click()
            again.wait_for_url(f"{server.url}browser?mode=browser")
            again.goto(server.url)
            assert again.url == f"{server.url}browser"
            assert not errors, errors
        finally:
            browser.close()
