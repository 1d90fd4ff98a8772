"""What does the int8 export change in the browser? Two pages in headless Chromium, one loading the
float16-stored export (the U-Nets computed in float32 as trained) and one the int8 export (the U-Nets'
convolutions in int8: `python -m imagen.export_web --weights int8`), each served by its own
`python app.py`. Both draw every prompt at the same seed, so from the same noise (the page's own
generator): the pictures differ only by what int8 changes.

    python benchmarks/browser_int8.py                            # 8 prompts, seed 0, defaults
    python benchmarks/browser_int8.py --seed 1 --prompts "pizza" "a picture of a penguin"

Prints one JSON line per prompt (mean and largest absolute difference of the 64 px and the 256 px
images in grey levels of 255, each page's seconds to them), then the medians with the ratio of the
int8 page's time to the float16 page's (runs alternate, after a warm-up of each, so this VM's drifting
speed hits both alike), and each page's first-visit download. Writes the two rows of 256 px images to
--out for looking at. How the int8 pictures score: benchmarks/browser_scores.py --weights int8.

Needs Debian's Chromium at /usr/bin/chromium, the runtime (python -m imagen.web_runtime) and onnx.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.browser_cascade import open_page  # noqa: E402  (/browser, loaded and ready)
from benchmarks.browser_latency import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the same browser and flags)
from tests.local_server import served  # noqa: E402

PROMPTS = ("red apple", "a picture of a penguin", "purple banana", "pizza", "snowman, twemoji style", "rocket",
           "a green cat face", "flag of Japan")
EXPORTS = ("float16", "int8")
DRAW = """async ([prompt, seed]) => {
    const timings = await window.imagenBrowser.run({prompt, seed});
    const png = (id) => document.getElementById(id).toDataURL('image/png');
    return {timings, image64: png('final-64'), image256: png('final-256')};
}"""


def pixels(data_url: str) -> np.ndarray:
    """A canvas's PNG data URL as an (H, W, 3) float array of grey levels."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "emoji")
    p.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "browser-int8.png")
    args = p.parse_args(argv)
    if not (args.checkpoint / "pipeline.json").is_file():
        sys.exit(f"no checkpoint in {args.checkpoint}")
    from playwright.sync_api import sync_playwright

    checkpoint = args.checkpoint.resolve()
    with served(checkpoint, IMAGEN_WEB_WEIGHTS="float16") as app16, \
            served(checkpoint, IMAGEN_WEB_WEIGHTS="int8") as app8, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pages = {}
            for name, app in zip(EXPORTS, (app16, app8)):  # each its own profile: each downloads everything
                opened = open_page(browser.new_context(viewport={"width": 1280, "height": 900}), app.url)
                pages[name] = opened["page"]
                print(json.dumps({"visit": name, "ready_s": opened["ready_s"], "network_bytes": opened["network_bytes"],
                                  "threads": opened["threads"]}), flush=True)
            for page in pages.values():  # warm-up: the first run of a session is slower
                page.evaluate(DRAW, [args.prompts[0], args.seed + 1])
            rows, strips = [], {name: [] for name in EXPORTS}
            for prompt in args.prompts:
                got = {name: page.evaluate(DRAW, [prompt, args.seed]) for name, page in pages.items()}
                images = {name: (pixels(g["image64"]), pixels(g["image256"])) for name, g in got.items()}
                for name in EXPORTS:
                    strips[name].append(images[name][1])
                d64, d256 = (np.abs(images["int8"][i] - images["float16"][i]) for i in (0, 1))
                row = {"prompt": prompt, "seed": args.seed,
                       "diff_64": round(float(d64.mean()), 2), "max_64": int(d64.max()),
                       "diff_256": round(float(d256.mean()), 2), "max_256": int(d256.max()),
                       **{f"{name}_s": {k: round(got[name]["timings"][k], 2) for k in ("image64", "image256")}
                          for name in EXPORTS}}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            browser.close()

    median = {f"{name}_{k}_s": round(statistics.median(r[f"{name}_s"][k] for r in rows), 2)
              for name in EXPORTS for k in ("image64", "image256")}
    print(json.dumps({
        "median": median,
        "ratio_64": round(median["int8_image64_s"] / median["float16_image64_s"], 3),
        "ratio_256": round(median["int8_image256_s"] / median["float16_image256_s"], 3),
        "median_diff_64": statistics.median(r["diff_64"] for r in rows),
        "median_diff_256": statistics.median(r["diff_256"] for r in rows),
        "prompts": len(rows),
    }), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid = np.concatenate([np.concatenate(strips[name], axis=1) for name in EXPORTS], axis=0)
    Image.fromarray(grid.clip(0, 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out} (rows: {', '.join(EXPORTS)})", flush=True)


if __name__ == "__main__":
    main()
