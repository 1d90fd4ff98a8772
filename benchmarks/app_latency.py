"""How fast does the web demo feel? Times a real `python app.py` server through gradio_client.

    python benchmarks/app_latency.py                              # shipped weights, default settings
    python benchmarks/app_latency.py --checkpoint checkpoints/emoji --runs 5 --clients 1 4

Starts the app on a free localhost port, sends one request to load the pipeline (reported as
`first_request_s`), then `--runs` requests with new prompts and prints one JSON line per client
count: `first_frame_s` (submit to the first streamed x_t / x0 pair arriving at the client) and
`final_s` (submit to the final 256 px image), medians over all requests, and `frames` (streamed
updates the client received per request).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagen.config import Settings  # noqa: E402
from imagen.web.serving import read_defaults  # noqa: E402
from tests.local_server import served  # noqa: E402

PROMPTS = ["red apple, twemoji style", "cat face, openmoji style", "sun, twemoji style", "red heart",
           "rocket, twemoji style", "pizza, openmoji style", "grinning face", "flag of Japan"]


def timed_request(client: Client, d: Settings, prompt: str, seed: int) -> dict:
    """Submit one generation with the checkpoint's defaults; time the first update and the final one."""
    start = time.perf_counter()
    job = client.submit(prompt, d.guidance_scale, d.steps, seed, False, d.sr_steps, d.sampler, d.sr,
                        api_name="/generate")
    first, frames = None, 0
    for _ in job:  # each iteration is one streamed update
        frames += 1
        first = first or time.perf_counter() - start
    job.result()
    return {"first_frame_s": first, "final_s": time.perf_counter() - start, "frames": frames}


def concurrent_requests(url: str, defaults: Settings, clients: int, runs: int) -> list[dict]:
    """`clients` clients at once, each sending `runs` requests one after another."""
    records: list[dict] = []
    lock = threading.Lock()

    def one_client(c: int) -> None:
        own = Client(url, verbose=False)
        for r in range(runs):
            rec = timed_request(own, defaults, PROMPTS[(c + r) % len(PROMPTS)] + f" {r}", seed=100 * c + r)
            with lock:
                records.append(rec)

    threads = [threading.Thread(target=one_client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "emoji")
    p.add_argument("--runs", type=int, default=5, help="requests per client after the warm-up (default: 5)")
    p.add_argument("--clients", type=int, nargs="+", default=[1], help="concurrent clients (default: 1)")
    args = p.parse_args(argv)
    if not (args.checkpoint / "pipeline.json").is_file():
        sys.exit(f"no checkpoint in {args.checkpoint}")
    defaults, _ = read_defaults(args.checkpoint)

    with served(args.checkpoint.resolve()) as app:
        client = Client(app.url, verbose=False)
        start = time.perf_counter()
        timed_request(client, defaults, "warm-up", 0)  # loads the pipeline: the first visitor's wait
        first_request_s = time.perf_counter() - start
        for n in args.clients:
            records = concurrent_requests(app.url, defaults, n, args.runs)
            print(json.dumps({
                "clients": n, "requests": len(records), "first_request_s": round(first_request_s, 2),
                **{k: round(statistics.median(r[k] for r in records), 3)
                   for k in ("first_frame_s", "final_s", "frames")},
                "max_final_s": round(max(r["final_s"] for r in records), 3),
            }), flush=True)

if __name__ == "__main__":
    main()
