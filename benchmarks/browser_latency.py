"""How fast is the web demo in a real browser? Chromium (Playwright) against a real `python app.py`,
beside the same cascade in-process, measured in one run so the two can be compared as a ratio.

    python benchmarks/browser_latency.py                  # shipped weights, default settings, 3 runs
    python benchmarks/browser_latency.py --runs 5 --soak 100

Prints JSON lines:
- `browser`: click Generate -> first base frame painted (`first_frame_s`), -> final 256 px image
  painted (`final_s`); the distinct base and SR steps the page showed; `in_process_s`, the same
  cascade (defaults, a new prompt, prompt encoding included) run in this process right before each
  browser run, while the server and the browser idle; `client_s`, the same request to the /generate
  API through gradio_client (image files), until its final image; `ratio`, the median over runs of
  final_s over its in-process twin. Runs alternate so that this VM's drifting speed hits both alike.
  Medians over --runs after one warm-up of each that loads the pipeline.
- `soak` (with --soak N): N more runs in the same page, with the server's resident memory and the
  files in Gradio's cache folder before and after.

Needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402

from imagen.config import Settings  # noqa: E402
from imagen.web.serving import read_defaults  # noqa: E402
from tests.local_server import served  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROMPTS = ["red apple, twemoji style", "cat face, openmoji style", "sun, twemoji style", "red heart",
           "rocket, twemoji style", "pizza, openmoji style", "grinning face", "flag of Japan"]

# Installed in the page: timestamps (performance.now, at the next animation frame, i.e. when the
# browser paints) of each step the live view shows, and of the final 256 px image.
RECORDER = """() => {
    window.bench = {steps: [], final: null, t0: null, armed: false};
    const painted = (fn) => requestAnimationFrame(() => fn(performance.now()));
    new MutationObserver(() => {
        const b = window.bench;
        if (b.t0 === null) return;
        const img = document.querySelector('#live-x-t');
        // A run starts by clearing the page: what is on it before that is the last run's.
        if (!b.armed) { b.armed = !img && !document.querySelector('#final-256 img'); if (!b.armed) return; }
        const step = img && img.dataset.step;
        if (step && (!b.steps.length || b.steps.at(-1).step !== step)) {
            b.steps.push({step, t: null});
            const rec = b.steps.at(-1);
            img.decode().catch(() => {}).then(() => painted(t => { rec.t = t; }));
        }
        const fin = document.querySelector('#final-256 img');
        if (fin && b.final === null) {
            b.final = -1;
            fin.decode().catch(() => {}).then(() => painted(t => { b.final = t; }));
        }
    }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""
CLICK = """prompt => {
    Object.assign(window.bench, {steps: [], final: null, armed: false, t0: performance.now()});
    document.querySelector('#generate').click();
}"""


def in_process_run(pipe, prompt: str, seed: int) -> float:
    """Seconds of one whole cascade at the checkpoint's defaults, prompt encoding included."""
    start = time.perf_counter()
    list(pipe.generate(prompt, seed=seed))
    return time.perf_counter() - start


def client_run(client: Client, prompt: str, d: Settings) -> float:
    """Seconds until a /generate request through gradio_client returns its final image (defaults d, seed 0)."""
    start = time.perf_counter()
    client.predict(prompt, d.guidance_scale, d.steps, 0, False, d.sr_steps, d.sampler, d.sr, api_name="/generate")
    return time.perf_counter() - start


def browser_run(page, prompt: str) -> dict:
    """One click of Generate with the page's default settings; seconds from the click."""
    page.fill("#prompt textarea", prompt)
    page.evaluate(CLICK, prompt)
    page.wait_for_function("() => window.bench.final > 0 && window.bench.steps.every(s => s.t !== null)",
                           timeout=120_000)
    bench = page.evaluate("window.bench")
    t0, steps = bench["t0"], bench["steps"]
    if "--debug" in sys.argv:
        print(json.dumps([(s["step"], round(s["t"] - t0)) for s in steps]), round(bench["final"] - t0), file=sys.stderr)
    base = [s for s in steps if s["step"].startswith("base")]
    return {"first_frame_s": (base[0]["t"] - t0) / 1000 if base else None,
            "final_s": (bench["final"] - t0) / 1000,
            "base_steps_shown": len({s["step"] for s in base}),
            "sr_steps_shown": len({s["step"] for s in steps if s["step"].startswith("sr")})}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cache_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "emoji")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each kind after a warm-up (default: 3)")
    p.add_argument("--soak", type=int, default=0, help="then this many more browser runs, for memory and disk")
    p.add_argument("--server-env", nargs="*", default=[], metavar="KEY=VALUE",
                   help="environment variables for the server, e.g. OMP_NUM_THREADS=1")
    p.add_argument("--debug", action="store_true", help="print each run's painted steps (ms after the click)")
    args = p.parse_args(argv)
    if not (args.checkpoint / "pipeline.json").is_file():
        sys.exit(f"no checkpoint in {args.checkpoint}")
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from imagen.pipeline import ImagenPipeline
    defaults, _ = read_defaults(args.checkpoint)
    pipe = ImagenPipeline.from_pretrained(args.checkpoint.resolve())
    in_process_run(pipe, "warm-up", 0)

    with served(args.checkpoint.resolve(), **dict(kv.split("=", 1) for kv in args.server_env)) as app:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(f"{app.url}?mode=server")  # the server's page: / may lead to /browser
                page.wait_for_selector("#prompt textarea")
                page.evaluate(RECORDER)
                page.get_by_label("Randomize seed").uncheck()  # a fixed seed: the same work each run
                warm = browser_run(page, "warm-up")  # loads the pipeline: the first visitor's wait
                client = Client(app.url, verbose=False)
                client_run(client, "warm-up", defaults)
                records = []
                for r in range(args.runs):
                    prompt = PROMPTS[r % len(PROMPTS)] + f" {r}"
                    model_s = in_process_run(pipe, prompt + " (in-process)", 0)
                    client_s = client_run(client, prompt + " (client)", defaults)
                    records.append({**browser_run(page, prompt), "in_process_s": model_s, "client_s": client_s})
                    records[-1]["ratio"] = records[-1]["final_s"] / model_s
                median = {k: round(statistics.median(r[k] for r in records), 3) for k in records[0]}
                print(json.dumps({"browser": {**median, "first_request_s": round(warm["final_s"], 2),
                                              "runs": len(records), "ratios": [round(r["ratio"], 2)
                                                                               for r in records]}}), flush=True)
                if args.soak:
                    cache = app.log.parent / "gradio"  # GRADIO_TEMP_DIR, beside the log
                    before = {"rss_mb": rss_mb(app.proc.pid), "cache_files": cache_files(cache)}
                    soak = [browser_run(page, PROMPTS[r % len(PROMPTS)]) for r in range(args.soak)]
                    print(json.dumps({"soak": {
                        "runs": args.soak, "before": before,
                        "after": {"rss_mb": rss_mb(app.proc.pid), "cache_files": cache_files(cache)},
                        "final_s_median": round(statistics.median(r["final_s"] for r in soak), 3)}}), flush=True)
            finally:
                browser.close()


if __name__ == "__main__":
    main()
