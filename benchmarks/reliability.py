"""Does the web demo hold up against bad input, faults and load? Runs them against a real server.

    python benchmarks/reliability.py                          # bad inputs and faults, shipped weights
    python benchmarks/reliability.py --clients 10 --requests 2 --burst 40   # and the load figures

Starts `python app.py` on a free localhost port and sends it every entry of BAD_INPUTS (through
gradio_client, and as raw JSON for what a client library cannot send, such as NaN), then the
faults of `faults()`. Prints one line per probe: what was sent and what came back. Then, with
--clients, that many clients at once each send --requests generations; with --burst, that many
requests arrive at once, more than the queue holds. The last line is a JSON summary: probes
answered with a clear message, anything unexpected, tracebacks in the server's log, and the
server's memory (RSS) before and after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagen.web.serving import read_defaults  # noqa: E402
from tests.local_server import LocalApp, served, start_app  # noqa: E402

GOOD = {"prompt": "red apple, twemoji style", "guidance_scale": 4.0, "steps": 15, "seed": 0,
        "randomize_seed": False, "sr_steps": 10, "sampler": "ddpm", "sr": True}
ORDER = list(GOOD)  # the /generate API's argument order

# (what is wrong, the arguments that differ from GOOD): each must come back as a message naming it.
BAD_INPUTS = [
    ("empty prompt", {"prompt": ""}),
    ("blank prompt", {"prompt": "  \n "}),
    ("prompt not text", {"prompt": 5}),
    ("prompt null", {"prompt": None}),
    ("guidance above range", {"guidance_scale": 99.0}),
    ("guidance below range", {"guidance_scale": -1.0}),
    ("guidance as text", {"guidance_scale": "4"}),
    ("guidance true", {"guidance_scale": True}),
    ("steps 0", {"steps": 0}),
    ("steps 5000", {"steps": 5000}),
    ("steps 2.5", {"steps": 2.5}),
    ("steps as text", {"steps": "abc"}),
    ("steps null", {"steps": None}),
    ("sr_steps 101", {"sr_steps": 101}),
    ("seed negative", {"seed": -5}),
    ("seed beyond 2^31", {"seed": 2**40}),
    ("seed as text, randomized", {"seed": "7", "randomize_seed": True}),
    ("randomize_seed as text", {"randomize_seed": "no"}),
    ("sampler unknown", {"sampler": "euler"}),
    ("sr as the text 'false'", {"sr": "false"}),
    ("sr as 1", {"sr": 1}),
]
RAW_JSON = [  # bodies gradio_client cannot send: JSON's NaN and infinities, wrong shapes
    ("steps NaN", '["red apple", 4.0, NaN, 0, false, 10, "ddpm", true]'),
    ("seed NaN", '["red apple", 4.0, 15, NaN, false, 10, "ddpm", true]'),
    ("guidance Infinity", '["red apple", Infinity, 15, 0, false, 10, "ddpm", true]'),
    ("sr_steps -Infinity", '["red apple", 4.0, 15, 0, false, -Infinity, "ddpm", true]'),
    ("seed of 401 digits", '["red apple", 4.0, 15, 1' + "0" * 400 + ', false, 10, "ddpm", true]'),
    ("three arguments of eight", '["red apple", 4.0, 15]'),
    ("data not a list", '"red apple"'),
]
SWEEP = [  # /sweep: prompt, steps, seed, randomize_seed, sampler
    ("sweep steps 0", ("cat face", 0, 5, False, "ddpm")),
    ("sweep seed 1.5", ("cat face", 15, 1.5, False, "ddpm")),
    ("sweep randomize_seed as text", ("cat face", 15, 5, "false", "ddpm")),
    ("sweep sampler unknown", ("cat face", 15, 5, False, "heun")),
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(name: str, answer: str, clear: bool, results: list[dict]) -> None:
    results.append({"probe": name, "clear": clear})
    print(f"{'ok ' if clear else 'BAD'} {name:32s} -> {answer[:150]}", flush=True)


def predict(client: Client, args: tuple, api: str) -> tuple[bool, str]:
    """(refused, what came back) for one call."""
    try:
        out = client.predict(*args, api_name=api)
        return False, f"served: {str(out[-2])[:100]}"
    except Exception as e:  # the message is what is measured
        return True, f"{type(e).__name__}: {e}"


def raw_call(url: str, body: str, api: str = "generate") -> str:
    """POST a raw JSON body to the queue's HTTP API and return the server's event stream."""
    request = urllib.request.Request(f"{url}gradio_api/call/{api}", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            event = json.loads(r.read())["event_id"]
        with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event}", timeout=600) as r:
            return " ".join(r.read().decode().split())
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}: {e.read().decode()[:150]}"


def bad_inputs(app: LocalApp, results: list[dict]) -> None:
    client = Client(app.url, verbose=False, download_files=False)
    for name, change in BAD_INPUTS:
        refused, answer = predict(client, tuple({**GOOD, **change}[k] for k in ORDER), "/generate")
        named = any(k in answer for k in change) or ("prompt" in change and "prompt is empty" in answer)
        report(name, answer, refused and named, results)
    for name, args in SWEEP:
        refused, answer = predict(client, args, "/sweep")
        report(name, answer, refused and ("must be" in answer), results)
    for name, data in RAW_JSON:
        answer = raw_call(app.url, '{"data": ' + data + "}")
        clear = ("event: error" in answer and '"error": null' not in answer) or answer.startswith("HTTP 4")
        report(name, answer, clear, results)
    # What is not an argument: uploads (the page takes none), files outside the cache, unknown APIs.
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.bin\"\r\n\r\n"
            + b"0" * 50 * 2**20 + b"\r\n--b--\r\n")
    request = urllib.request.Request(f"{app.url}gradio_api/upload", data=body,
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            answer, code = f"HTTP {r.status}: accepted", r.status
    except urllib.error.HTTPError as e:
        answer, code = f"HTTP {e.code}: {e.read().decode()[:100]}", e.code
    except OSError as e:  # the server may close the connection before the client has sent it all
        answer, code = f"connection closed by the server: {e}", 413
    report("upload of 50 MB", f"{answer} ({time.perf_counter() - start:.2f} s)", code == 413, results)
    for path in ("gradio_api/file=/etc/passwd", "gradio_api/file=../../app.py", "gradio_api/file=app.py"):
        try:
            with urllib.request.urlopen(app.url + path, timeout=10) as r:
                answer, code = f"HTTP {r.status}: served {len(r.read())} bytes", r.status
        except urllib.error.HTTPError as e:
            answer, code = f"HTTP {e.code}", e.code
        report(f"GET {path}", answer, code in (403, 404), results)
    refused, answer = predict(client, ("red apple",), "/no_such_api")
    report("unknown api_name", answer, refused, results)


def faults(app: LocalApp, checkpoint: Path, workdir: Path, results: list[dict]) -> int:
    """A client that leaves mid-stream; a server started on a broken checkpoint. Returns the
    tracebacks those servers logged."""
    client = Client(app.url, verbose=False, download_files=False)
    job = client.submit(*GOOD.values(), api_name="/generate")
    for _ in job:  # leave after the first streamed frame
        break
    job.cancel()
    refused, answer = predict(client, tuple(GOOD.values()), "/generate")
    report("client leaves mid-stream, next call", answer, not refused, results)

    broken = workdir / "broken"
    broken.mkdir()
    tracebacks = 0
    for stage in ("base", "sr"):
        (broken / stage).symlink_to((checkpoint / stage).resolve())
    for name, text in (("pipeline.json is [1,2,3]", "[1, 2, 3]"),
                       ("pipeline.json steps 'abc'", '{"defaults": {"steps": "abc"}}')):
        (broken / "pipeline.json").write_text(text)
        other_dir = Path(tempfile.mkdtemp(dir=workdir))
        other = start_app(broken, other_dir, OMP_NUM_THREADS="1")
        try:
            other.wait(timeout=180)
            with urllib.request.urlopen(f"{other.url}config", timeout=10) as r:
                page = json.loads(r.read())
            status = next(c["props"]["value"] for c in page["components"] if c["props"].get("elem_id") == "status")
            refused, answer = predict(Client(other.url, verbose=False, download_files=False),
                                      tuple(GOOD.values()), "/generate")
            report(f"start-up, {name}", f"page opens: {status[:70]}... Generate: {answer[:60]}",
                   "cannot be used" in status and refused, results)
        except RuntimeError as e:
            report(f"start-up, {name}", f"server did not start: {str(e)[-100:]}", False, results)
        finally:
            other.stop()
            tracebacks += other.log.read_text().count("Traceback")
    return tracebacks


def load(app: LocalApp, clients: int, requests: int, burst: int) -> dict:
    """`clients` clients at once, `requests` each; then `burst` requests at once."""
    figures: dict = {}
    if clients:
        times: list[float] = []
        n_served = [0]
        lock = threading.Lock()

        def one_client(c: int) -> None:
            own = Client(app.url, verbose=False, download_files=False)
            for r in range(requests):
                start = time.perf_counter()
                refused, _ = predict(own, tuple({**GOOD, "seed": 100 * c + r}.values()), "/generate")
                with lock:
                    n_served[0] += not refused
                    times.append(time.perf_counter() - start)
        threads = [threading.Thread(target=one_client, args=(c,)) for c in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        figures["clients"] = {"clients": clients, "requests": clients * requests, "served": n_served[0],
                              "median_s": round(statistics.median(times), 1), "max_s": round(max(times), 1),
                              "wall_s": round(time.perf_counter() - start, 1), "rss_mb": round(rss_mb(app.proc.pid))}
        print(json.dumps(figures["clients"]), flush=True)
    if burst:
        outcomes: list[str] = []
        jobs = [Client(app.url, verbose=False, download_files=False) for _ in range(burst)]
        threads = [threading.Thread(target=lambda c=c, i=i: outcomes.append(
            predict(c, tuple({**GOOD, "seed": i}.values()), "/generate")[1])) for i, c in enumerate(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [o for o in outcomes if not o.startswith("served")]
        figures["burst"] = {"at_once": burst, "served": burst - len(refused), "refused": len(refused),
                            "refusals": sorted(set(o[:80] for o in refused)), "rss_mb": round(rss_mb(app.proc.pid))}
        print(json.dumps(figures["burst"]), flush=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "emoji")
    p.add_argument("--clients", type=int, default=0, help="clients at once for the load test (default: none)")
    p.add_argument("--requests", type=int, default=2, help="requests per client (default: 2)")
    p.add_argument("--burst", type=int, default=0, help="requests sent at once, beyond the queue (default: none)")
    p.add_argument("--skip-probes", action="store_true", help="only the load test")
    args = p.parse_args(argv)
    if not (args.checkpoint / "pipeline.json").is_file():
        sys.exit(f"no checkpoint in {args.checkpoint}")
    defaults, _ = read_defaults(args.checkpoint)
    GOOD.update(steps=defaults.steps, sr_steps=defaults.sr_steps, sampler=defaults.sampler,
                guidance_scale=defaults.guidance_scale)

    results: list[dict] = []
    other_tracebacks = 0
    with served(args.checkpoint.resolve()) as app:
        predict(Client(app.url, verbose=False, download_files=False), tuple(GOOD.values()), "/generate")
        rss_before = rss_mb(app.proc.pid)  # after the first request has loaded the pipeline
        if not args.skip_probes:
            bad_inputs(app, results)
            other_tracebacks = faults(app, args.checkpoint, app.log.parent, results)
        figures = load(app, args.clients, args.requests, args.burst)
        log = app.log.read_text()
        alive = app.proc.poll() is None
        rss_after = rss_mb(app.proc.pid) if alive else float("nan")
    print(json.dumps({"probes": len(results), "clear": sum(r["clear"] for r in results),
                      "unexpected": [r["probe"] for r in results if not r["clear"]],
                      "tracebacks_logged": log.count("Traceback") + other_tracebacks, "server_alive": alive,
                      "rss_mb_before": round(rss_before), "rss_mb_after": round(rss_after), **figures}))


if __name__ == "__main__":
    main()
