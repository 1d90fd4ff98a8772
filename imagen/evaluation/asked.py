"""Concepts asked the way people write: in phrasings training never used, and in colours the data
never showed them in. The two modes of `python -m imagen.evaluate` beside the default one.

- `--mode phrasing`: each concept asked by its bare name, then in each of the held-out phrasings
  (`data.phrasing.HELD_OUT_TEMPLATES`, "a picture of a penguin"). Every image is scored against the
  concept's name among the names of all concepts. What counts is the ratio: R-precision in the
  held-out phrasings over R-precision by name.
- `--mode colour`: pairs of a colour word and a concept whose own colour is at least two hue
  classes away, taken only from the pairs that training never produces (`data.colours.is_held_out`).
  Two scores: whether the drawing's dominant hue class is the asked colour, and whether a
  colour-blind judge (grey input, trained on hue-turned images) still names the object, beside the
  same concepts asked in their own colour.
- `--mode grey`: the same for grey-filled concepts (an elephant, a cloud), which have no hue for
  recolouring to rotate ("pink elephant"): any held-out colour, the real drawings tinted
  (`data.colours.tint_grey`) as the ceiling.

Concepts are single-image concepts (no skin-tone variants) of the default style, so that a bare
name has one drawing to aim at.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..data.caption_variety import split_caption
from ..data.colours import (
    COLOUR_WORDS,
    HUE_CLASSES,
    MIN_GREY_FILL,
    clear_colour,
    dominant_hue,
    grey_fill_share,
    hue_distance,
    hue_histogram,
    is_held_out,
    recolour_to,
    tint_grey,
)
from ..data.emoji import DEFAULT_STYLE
from ..data.phrasing import HELD_OUT_TEMPLATES, fill, style_suffix
from ..data.prepared import PreparedDataset
from ..images import from_uint8, to_pil
from ..pipeline import ImagenPipeline
from ..text_encoder import TextEncoder
from . import sweep
from .image_encoder import COLOUR_BLIND_CONFIG, ImageEncoder, load_or_train
from .plots import sample_grid
from .scorer import Scorer, noise_images

MODES = ("captions", "phrasing", "colour", "grey")


def named_concepts(ds: PreparedDataset, seed: int) -> list[int]:
    """Images of the default style whose concept has one image per style and a bare name, in a seeded
    random order: a concept asked by name has exactly one drawing to aim at."""
    from ..data.balance import images_per_concept
    counts = images_per_concept(ds.main_captions)
    picked = [i for i, caps in enumerate(ds.captions)
              if len(caps) > 1 and counts[i] == 1 and split_caption(caps)[1] == DEFAULT_STYLE]
    if not picked:
        raise ValueError(f"--mode phrasing and --mode colour ask for concepts by name in the {DEFAULT_STYLE} style: "
                         "use --data emoji")
    return [picked[k] for k in np.random.default_rng(seed).permutation(len(picked))]


def _generate(pipe: ImagenPipeline, prompts: list[str], args: argparse.Namespace, bar) -> torch.Tensor:
    centre, _ = sweep.base_settings(pipe.defaults, None, None, None)
    images, _ = sweep.generate_64(pipe, prompts, centre, args.seed, args.batch_size, bar.update)
    return images


def _styled(prompt: str, style: str | None) -> str:
    return prompt + style_suffix(style) if style else prompt


def evaluate_phrasing(args: argparse.Namespace, pipe: ImagenPipeline | None, text_encoder: TextEncoder,
                      ds: PreparedDataset, judge: ImageEncoder, reference: np.ndarray, out: Path) -> dict:
    """Concepts by name and in every held-out phrasing, scored against their names."""
    from tqdm import tqdm
    index = np.array(named_concepts(ds, 0)[:args.num_captions])  # the same concepts at every --seed
    names = [ds.captions[i][1] for i in index]
    scorer = Scorer.build(ds, text_encoder, judge, index, reference, seed=args.seed, variant=1)
    real = from_uint8(ds.images_64[index])
    results: dict = {"mode": "phrasing", "num_concepts": len(index), "seed": args.seed, "style": args.style,
                     "held_out_templates": list(HELD_OUT_TEMPLATES), "real": scorer.score(real),
                     "blob": scorer.score(scorer.blobs), "noise": scorer.score(noise_images(len(index), args.seed))}
    asked = {"by name": [_styled(n, args.style) for n in names]}
    asked |= {t: [_styled(fill(t, n), args.style) for n in names] for t in HELD_OUT_TEMPLATES}
    # The text encoder's ceiling: does the prompt alone still point at its name? If it does and the
    # drawing does not, what is lost is in the U-Net's use of the text, not in the encoder.
    results["text_encoder"] = {label: scorer.score_text(text_encoder.sentence_embeddings(prompts))
                               for label, prompts in asked.items()}
    if pipe is None:
        return results
    steps = pipe.defaults.steps * -(-len(index) // args.batch_size) * len(asked)
    rows, shown = [], slice(0, min(8, len(index)))
    grid_rows = [("real", to_pil(real[shown]))]
    with tqdm(total=steps, desc="generating", unit="step") as bar:
        for label, prompts in asked.items():
            images = _generate(pipe, prompts, args, bar)
            rows.append({"asked": label, "example": prompts[0], **scorer.score(images)})
            grid_rows.append((label.replace("{a} {x}", "a ...").replace("{x}", "..."), to_pil(images[shown])))
    phrased = rows[1:]
    n = len(index) * len(phrased)
    for key in ("r_precision", "r_precision_colour"):
        mean = float(np.mean([r[key] for r in phrased]))
        results[f"phrased_{key}"] = round(mean, 4)
        results[f"phrased_{key}_se"] = round(float(np.sqrt(mean * (1 - mean) / n)), 4)
        results[f"ratio_{key}"] = round(mean / max(rows[0][key], 1e-9), 4)
    results["rows"] = rows
    sample_grid(grid_rows, names[shown]).save(out / "phrasing_samples.png")
    return results


def colour_pairs(ds: PreparedDataset, n: int, seed: int = 0) -> list[tuple[int, str, str]]:
    """Up to n (image, concept's own colour, asked colour): one held-out colour per concept, at least
    two hue classes from the concept's own, for concepts whose drawing is clearly of one colour and
    whose name says none."""
    candidates = named_concepts(ds, seed)
    hist = hue_histogram(from_uint8(ds.images_64[np.sort(candidates)]))
    own = dict(zip(np.sort(candidates).tolist(), clear_colour(hist)))
    rng = np.random.default_rng(seed)
    pairs = []
    for i in candidates:
        name = ds.captions[i][1]
        if own[i] is None or COLOUR_WORDS.search(name):
            continue
        options = [c for c in HUE_CLASSES if hue_distance(c, own[i]) >= 2 and is_held_out(c, name)]
        if options:
            pairs.append((i, own[i], options[rng.integers(len(options))]))
            if len(pairs) == n:
                break
    return pairs


def grey_pairs(ds: PreparedDataset, n: int, seed: int = 0) -> list[tuple[int, None, str]]:
    """Up to n (image, None, asked colour): one held-out colour per concept, for concepts whose
    drawing is grey-filled (data.colours.grey_fill) with no clear colour and whose name says none."""
    candidates = named_concepts(ds, seed)
    ordered = np.sort(candidates)
    images = ds.images_64[ordered]
    own = dict(zip(ordered.tolist(), clear_colour(hue_histogram(from_uint8(images)))))
    grey = dict(zip(ordered.tolist(), grey_fill_share(images) >= MIN_GREY_FILL))
    rng = np.random.default_rng(seed)
    pairs = []
    for i in candidates:
        name = ds.captions[i][1]
        if not grey[i] or own[i] is not None or COLOUR_WORDS.search(name):
            continue
        options = [c for c in HUE_CLASSES if is_held_out(c, name)]
        if options:
            pairs.append((i, None, options[rng.integers(len(options))]))
            if len(pairs) == n:
                break
    return pairs


def colour_named_emoji(ds: PreparedDataset) -> tuple[np.ndarray, list[str]]:
    """Real drawings whose name starts with a colour word ("blue heart", "green apple"): the
    colour classifier's own ceiling."""
    index, colours = [], []
    for i, caps in enumerate(ds.captions):
        first = split_caption(caps)[0].split(" ", 1)[0].lower()
        if first in HUE_CLASSES:
            index.append(i)
            colours.append(first)
    return np.array(index, dtype=np.int64), colours


def _hits(images: torch.Tensor, colours: list[str]) -> dict:
    hit = np.array([d == c for d, c in zip(dominant_hue(images), colours)], dtype=float)
    p = float(hit.mean()) if len(hit) else 0.0
    return {"colour_hit": round(p, 4), "colour_hit_se": round(float(np.sqrt(p * (1 - p) / max(len(hit), 1))), 4)}


def evaluate_colour(args: argparse.Namespace, pipe: ImagenPipeline | None, text_encoder: TextEncoder,
                    ds: PreparedDataset, reference: np.ndarray, out: Path) -> dict:
    """Held-out colour-concept pairs: the asked colour's hit rate, and the shape under a colour-blind
    judge. With args.mode "grey", the concepts are grey-filled ones."""
    from tqdm import tqdm
    grey = args.mode == "grey"
    pairs = (grey_pairs if grey else colour_pairs)(ds, args.num_captions)  # the same pairs at every --seed
    if len(pairs) < 2:
        raise ValueError(f"too few held-out {'grey ' if grey else ''}colour-concept pairs in this dataset to evaluate")
    index = np.array([i for i, _, _ in pairs])
    own, asked = [o for _, o, _ in pairs], [c for _, _, c in pairs]
    names = [ds.captions[i][1] for i in index]
    blind, blind_record = load_or_train(ds, text_encoder, COLOUR_BLIND_CONFIG, device=text_encoder.device)
    scorer = Scorer.build(ds, text_encoder, blind, index, reference, seed=args.seed, variant=1)
    real = from_uint8(ds.images_64[index])
    real_recoloured = tint_grey(real, asked) if grey else recolour_to(real, own, asked)  # as training does
    named_index, named_colours = colour_named_emoji(ds)
    results: dict = {
        "mode": args.mode, "num_pairs": len(pairs), "seed": args.seed, "style": args.style,
        "pairs": [f"{c} {n}" for c, n in zip(asked, names)], "colour_blind_judge": blind_record,
        # the classifier's ceiling: real emoji whose names say their colour
        "colour_named_emoji": {"count": len(named_index),
                               **_hits(from_uint8(ds.images_64[named_index]), named_colours)},
        "real": {**scorer.score(real), **_hits(real, asked)},
        "real_recoloured": {**scorer.score(real_recoloured), **_hits(real_recoloured, asked)},
        "noise": scorer.score(noise_images(len(index), args.seed)),
    }
    if pipe is not None:
        prompts = {"own colour": [_styled(n, args.style) for n in names],
                   "asked colour": [_styled(f"{c} {n}", args.style) for c, n in zip(asked, names)]}
        steps = pipe.defaults.steps * -(-len(index) // args.batch_size) * len(prompts)
        shown = slice(0, min(8, len(index)))
        grid_rows = [("real", to_pil(real[shown])), (f"real, {'tinted' if grey else 'recoloured'}",
                                                     to_pil(real_recoloured[shown]))]
        with tqdm(total=steps, desc="generating", unit="step") as bar:
            for label, batch in prompts.items():
                images = _generate(pipe, batch, args, bar)
                # own-colour images are scored against the asked colour too: the floor a model that
                # ignores the colour word reaches
                results[label] = {"example": batch[0], **scorer.score(images), **_hits(images, asked)}
                grid_rows.append((label, to_pil(images[shown])))
        results["shape_gap"] = round(results["own colour"]["r_precision"] - results["asked colour"]["r_precision"], 4)
        labels = [f"{c} {n}" for c, n in zip(asked[shown], names[shown])]
        sample_grid(grid_rows, labels).save(out / f"{args.mode}_samples.png")
    return results


def format_asked(results: dict) -> str:
    """The phrasing or colour results as a plain-text table, ceiling and floors first."""
    def r(row: dict) -> str:
        return (f"{row['r_precision']:.3f} ± {row['r_precision_se']:.3f}   "
                f"{row['r_precision_colour']:.3f} ± {row['r_precision_colour_se']:.3f}")
    style = f", '{style_suffix(results['style'])[2:]}' added" if results["style"] else ""
    if results["mode"] == "phrasing":
        lines = [f"{results['num_concepts']} concepts by name and in {len(results['held_out_templates'])} held-out "
                 f"phrasings, seed {results['seed']}{style}; scored against the concept's name",
                 f"{'':<38} R-precision     colour-matched",
                 f"{'real images (ceiling)':<38} {r(results['real'])}",
                 f"{'colour blobs (floor)':<38} {r(results['blob'])}",
                 f"{'noise (floor)':<38} {r(results['noise'])}"]
        if "text_encoder" in results:
            lines.append("the text encoder alone, no image (the prompt's sentence embedding ranks its name first):")
            lines += [f"  {label[:36]:<36} {row['r_precision']:.3f} ± {row['r_precision_se']:.3f}"
                      for label, row in results["text_encoder"].items()]
            if "rows" in results:
                lines.append("generated:")
        for row in results.get("rows", []):
            lines.append(f"{row['asked'][:38]:<38} {r(row)}")
        if "rows" in results:
            lines.append(f"{'held-out phrasings, all':<38} {results['phrased_r_precision']:.3f} ± "
                         f"{results['phrased_r_precision_se']:.3f}   {results['phrased_r_precision_colour']:.3f} ± "
                         f"{results['phrased_r_precision_colour_se']:.3f}")
            lines.append(f"ratio, held-out phrasings / by name: {results['ratio_r_precision']:.3f} "
                         f"(colour-matched {results['ratio_r_precision_colour']:.3f})")
        return "\n".join(lines)
    named = results["colour_named_emoji"]
    which = ("grey-filled concepts" if results["mode"] == "grey"
             else "colour-concept pairs (colour >= 2 hue classes from the concept's own)")
    lines = [f"{results['num_pairs']} held-out {which}, seed {results['seed']}{style}",
             f"colour classifier on {named['count']} real emoji named by their colour (its ceiling): "
             f"{named['colour_hit']:.3f}",
             f"{'':<38} asked colour dominant   colour-blind R-precision"]
    changed = "tinted" if results["mode"] == "grey" else "recoloured"
    for label, key in (("real images, own colour", "real"), (f"real images, {changed} (ceiling)", "real_recoloured"),
                       ("noise (floor)", "noise"), ("generated, own colour (floor)", "own colour"),
                       ("generated, asked colour", "asked colour")):
        if key in results:
            row = results[key]
            hit = f"{row['colour_hit']:.3f} ± {row['colour_hit_se']:.3f}" if "colour_hit" in row else "-"
            lines.append(f"{label:<38} {hit:<23} {row['r_precision']:.3f} ± {row['r_precision_se']:.3f}")
    if "shape_gap" in results:
        lines.append("shape kept: colour-blind R-precision, own colour minus asked colour = "
                     f"{results['shape_gap']:+.3f}")
    return "\n".join(lines)
