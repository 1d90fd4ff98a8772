"""How fast is the browser mode (/browser), where the visitor's browser runs the whole cascade?
Headless Chromium against a real `python app.py`, beside the same cascade in this process, measured
in one run so that the two can be compared as a ratio.

    python benchmarks/browser_cascade.py                 # shipped weights, defaults, 3 runs, a class of 5
    python benchmarks/browser_cascade.py --runs 5 --class-size 0

Prints JSON lines:
- `setup`: seconds of the server's first /browser/setup.json (the export, when web/models/ lacks it).
- `visits`: first and second visit of the page in one browser profile: seconds until the page is ready
  (downloads, then onnxruntime-web loading the models), and the bytes that crossed the network for the
  page's own requests (Chrome's encodedDataLength: headers included, 0 for what came from a cache) --
  the second visit reads the models from the Cache API.
- `cascade`: the page's time from Generate to the 64 px and the 256 px image painted, at the checkpoint's
  defaults, beside the server's in-process time to the same two images (ImagenPipeline.generate, prompt
  encoding included, the precision the app picks); `ratio_256` is the median of browser over in-process.
  Runs alternate so this VM's drifting speed hits both alike; medians over --runs after a warm-up.
- `class` (--class-size N): N pages, each with its own profile, loaded, then Generate pressed in all at
  once: the server's CPU seconds over the whole class (from /proc; beside what it spends idle over the same
  wall time, measured first; and what serving the N first visits' files took), and each page's time to 256 px. On
  this 2-core machine the N pages share two cores, so each is N times slower than alone; on a class's
  laptops each has its own.

Needs Debian's Chromium at /usr/bin/chromium, the runtime (python -m imagen.web_runtime) and onnx.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.browser_latency import CHROMIUM, CHROMIUM_ARGS, PROMPTS  # noqa: E402  (the same browser and prompts)
from imagen.export_web import DEFAULT_WEIGHTS, WEIGHTS  # noqa: E402
from tests.local_server import served  # noqa: E402

IDLE_S = 20
START_RUN = "(prompt) => { window.classRun = window.imagenBrowser.run({prompt, seed: 1}); }"  # not awaited


def in_process_run(pipe, prompt: str, seed: int) -> dict:
    """Seconds to the 64 px image (the base stage's last step) and to the 256 px one, encoding included."""
    start = time.perf_counter()
    image64 = None
    for step in pipe.generate(prompt, seed=seed):
        if step.stage == "base" and step.index == step.total - 1:
            image64 = time.perf_counter() - start
    return {"image64": image64, "image256": time.perf_counter() - start}


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_page(context, url: str) -> dict:
    """Load /browser in a new page of `context`; seconds until it is ready and the bytes it fetched."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    received = []
    cdp.on("Network.loadingFinished", lambda e: received.append(e["encodedDataLength"]))
    start = time.perf_counter()
    page.goto(f"{url}browser")
    if page.evaluate("() => window.imagenBrowser.ready") is not True:
        sys.exit(f"the page cannot run: {page.inner_text('#fallback')}")
    ready_s = time.perf_counter() - start
    handle = page.evaluate("() => ({threads: imagenBrowser.threads, isolated: imagenBrowser.isolated, "
                           "download: imagenBrowser.download})")
    return {"page": page, "ready_s": round(ready_s, 2), "network_bytes": int(sum(received)), **handle}


def browser_run(page, prompt: str, seed: int = 0) -> dict:
    return page.evaluate("([prompt, seed]) => window.imagenBrowser.run({prompt, seed})", [prompt, seed])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "emoji")
    p.add_argument("--weights", choices=WEIGHTS, default=DEFAULT_WEIGHTS,
                   help="the export the page loads (IMAGEN_WEB_WEIGHTS; see python -m imagen.export_web)")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each kind after a warm-up (default: 3)")
    p.add_argument("--class-size", type=int, default=5, help="pages at once against one server (0: none)")
    args = p.parse_args(argv)
    if not (args.checkpoint / "pipeline.json").is_file():
        sys.exit(f"no checkpoint in {args.checkpoint}")
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from imagen.pipeline import ImagenPipeline
    pipe = ImagenPipeline.from_pretrained(args.checkpoint.resolve())
    in_process_run(pipe, "warm-up", 0)

    with served(args.checkpoint.resolve(), IMAGEN_WEB_WEIGHTS=args.weights) as app:
        start = time.perf_counter()
        with urllib.request.urlopen(f"{app.url}browser/setup.json", timeout=600) as r:
            setup = json.load(r)
        if not setup["ok"]:
            sys.exit("; ".join(setup["problems"]))
        sizes = setup["models"]["manifest"]["files"]
        print(json.dumps({"setup": {"first_setup_s": round(time.perf_counter() - start, 2),
                                    "model_mb": round(sum(sizes.values()) / 1e6, 1),
                                    "runtime_mb": round(sum(setup["runtime"]["files"].values()) / 1e6, 1)}}),
              flush=True)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                first = open_page(context, app.url)
                first["page"].close()
                second = open_page(context, app.url)
                page = second.pop("page")
                first.pop("page")
                print(json.dumps({"visits": {"first": first, "second": second}}), flush=True)

                browser_run(page, "warm-up")
                records = []
                for r in range(args.runs):
                    prompt = PROMPTS[r % len(PROMPTS)] + f" {r}"
                    server = in_process_run(pipe, prompt + " (in-process)", 0)
                    page_t = browser_run(page, prompt)
                    records.append({"browser_64_s": page_t["image64"], "browser_256_s": page_t["image256"],
                                    "in_process_64_s": server["image64"], "in_process_256_s": server["image256"],
                                    "ratio_64": page_t["image64"] / server["image64"],
                                    "ratio_256": page_t["image256"] / server["image256"]})
                median = {k: round(statistics.median(r[k] for r in records), 2) for k in records[0]}
                print(json.dumps({"cascade": {**median, "runs": len(records), "threads": second["threads"],
                                              "ratios_256": [round(r["ratio_256"], 2) for r in records]}}),
                      flush=True)
                context.close()

                if args.class_size:
                    # Gradio's server costs CPU even when nobody asks it anything: measure that first.
                    idle0 = server_cpu_s(app.proc.pid)
                    time.sleep(IDLE_S)
                    idle_per_s = (server_cpu_s(app.proc.pid) - idle0) / IDLE_S
                    cpu0 = server_cpu_s(app.proc.pid)
                    wall0 = time.perf_counter()
                    pages = [open_page(browser.new_context(), app.url)["page"] for _ in range(args.class_size)]
                    loaded_cpu = server_cpu_s(app.proc.pid) - cpu0
                    for i, pg in enumerate(pages):  # started in every page, awaited after
                        pg.evaluate(START_RUN, PROMPTS[i % len(PROMPTS)])
                    finals = [pg.evaluate("() => window.classRun")["image256"] for pg in pages]
                    wall = time.perf_counter() - wall0
                    print(json.dumps({"class": {
                        "pages": args.class_size, "wall_s": round(wall, 1),
                        "server_cpu_s": round(server_cpu_s(app.proc.pid) - cpu0, 2),
                        "server_idle_cpu_s_same_wall": round(idle_per_s * wall, 2),
                        "server_cpu_s_serving_files": round(loaded_cpu, 2),
                        "page_256_s": sorted(round(f, 1) for f in finals)}}), flush=True)
            finally:
                browser.close()


if __name__ == "__main__":
    main()
