"""Does the browser mode draw as well as the server? The evaluator's scores of the 64 px images the
page draws in headless Chromium (the export --weights picks, onnxruntime-web, sampler.js,
the page's own noise) beside the server's images of the same captions and seeds (ImagenPipeline at
the precision the app picks), with the real images' ceiling and the noise floor.

    python benchmarks/browser_scores.py                          # 200 captions, seeds 0 1 2, defaults
    python benchmarks/browser_scores.py --num-captions 50 --seeds 0

The captions are `python -m imagen.evaluate`'s (one per concept, held out of the judge's training),
scored by the same judge against the same distractors. Image i of seed s is drawn with seed
1000 * s + i in both; the page's generator is not Python's, so the two draw different noise for a
seed: the scores are compared as samples of the same model, not picture by picture. (With the same
noise, tests/web/test_browser_cascade.py finds the page's pictures within 0.04 grey levels of
Python's.) Prints one JSON line per seed and one of means; writes the grids to --out.

Needs Debian's Chromium at /usr/bin/chromium, the runtime (python -m imagen.web_runtime), onnx, and
the emoji dataset (built on first use, as for the evaluator).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.browser_cascade import open_page  # noqa: E402  (/browser, loaded and ready)
from benchmarks.browser_latency import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the same browser and flags)
from imagen.export_web import DEFAULT_WEIGHTS, WEIGHTS  # noqa: E402
from tests.local_server import served  # noqa: E402

SCORES = ("r_precision", "r_precision_colour", "frechet_distance")
DRAW = """async ([prompt, seed]) => {
    await window.imagenBrowser.run({prompt, seed, settings: {sr: false}});
    const c = document.getElementById('final-64');
    return Array.from(c.getContext('2d').getImageData(0, 0, 64, 64).data);
}"""


def page_image(page, prompt: str, seed: int) -> torch.Tensor:
    """The 64 px image the page paints for `prompt` at `seed`, as (3, 64, 64) in [-1, 1]."""
    rgba = np.asarray(page.evaluate(DRAW, [prompt, seed]), dtype=np.uint8).reshape(64, 64, 4)
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1


def server_images(pipe, prompts: list[str], seed: int) -> torch.Tensor:
    """The pipeline's 64 px images, image i from seed 1000 * seed + i, at the checkpoint's defaults."""
    out = []
    for i, prompt in enumerate(prompts):
        *_, last = pipe.generate(prompt, seed=1000 * seed + i, sr=False)
        out.append(last.x_prev.float().cpu())
    return torch.cat(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "emoji")
    p.add_argument("--weights", choices=WEIGHTS, default=DEFAULT_WEIGHTS,
                   help="the export the page loads (IMAGEN_WEB_WEIGHTS; see python -m imagen.export_web)")
    p.add_argument("--num-captions", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cache-dir", type=Path, default=None, help="the dataset cache (default: the evaluator's)")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "browser-scores")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from imagen.data import load_dataset
    from imagen.evaluation.image_encoder import holdout_split, load_or_train
    from imagen.evaluation.plots import sample_grid
    from imagen.evaluation.scorer import Scorer, evaluation_index, noise_images
    from imagen.images import from_uint8, to_pil
    from imagen.pipeline import ImagenPipeline

    pipe = ImagenPipeline.from_pretrained(args.checkpoint.resolve())  # the app's device and precision
    ds = load_dataset("emoji", args.cache_dir)
    encoder, _ = load_or_train(ds, pipe.text_encoder, device=pipe.text_encoder.device)
    train_index, held_out = holdout_split(len(ds), encoder.config.holdout, encoder.config.split_seed)
    candidates = held_out if len(held_out) else np.arange(len(ds))  # as the evaluator picks them
    eval_index = evaluation_index(ds, candidates, args.num_captions, encoder.config.split_seed)
    prompts = [ds.main_captions[i] for i in eval_index]
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    with served(args.checkpoint.resolve(), IMAGEN_WEB_WEIGHTS=args.weights) as app:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                opened = open_page(browser.new_context(viewport={"width": 1280, "height": 900}), app.url)
                page, threads = opened["page"], opened["threads"]
                for seed in args.seeds:
                    scorer = Scorer.build(ds, pipe.text_encoder, encoder, eval_index, train_index, seed=seed)
                    start = time.perf_counter()
                    server = server_images(pipe, prompts, seed)
                    server_s = time.perf_counter() - start
                    drawn = []
                    start = time.perf_counter()
                    for i, prompt in enumerate(prompts):
                        drawn.append(page_image(page, prompt, 1000 * seed + i))
                        if (i + 1) % 25 == 0:
                            print(f"  seed {seed}: {i + 1}/{len(prompts)} drawn in the page", file=sys.stderr,
                                  flush=True)
                    page_s = time.perf_counter() - start
                    drawn = torch.stack(drawn)
                    row = {"seed": seed, "captions": len(prompts),
                           "real": scorer.score(from_uint8(ds.images_64[eval_index])),
                           "noise": scorer.score(noise_images(len(prompts), seed)),
                           "server": scorer.score(server), "browser": scorer.score(drawn),
                           "server_s_per_image": round(server_s / len(prompts), 2),
                           "browser_s_per_image": round(page_s / len(prompts), 2), "browser_threads": threads}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    show = slice(0, 8)
                    sample_grid([("real", to_pil(from_uint8(ds.images_64[eval_index[show]]))),
                                 ("server", to_pil(server[show])), ("browser", to_pil(drawn[show]))],
                                prompts[show]).save(args.out / f"samples-seed{seed}.png")
            finally:
                browser.close()
    means = {who: {k: round(statistics.mean(r[who][k] for r in rows), 4) for k in SCORES}
             for who in ("real", "noise", "server", "browser")}
    diff = {k: [round(r["browser"][k] - r["server"][k], 4) for r in rows] for k in SCORES}
    print(json.dumps({"mean_over_seeds": means, "browser_minus_server": diff, "seeds": args.seeds}), flush=True)


if __name__ == "__main__":
    main()
