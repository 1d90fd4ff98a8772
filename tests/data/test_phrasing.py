import re

import numpy as np

from imagen.data.phrasing import (
    CORE_TEMPLATES,
    HELD_OUT_TEMPLATES,
    PHRASING_SETS,
    TRAIN_TEMPLATES,
    CaptionPolicy,
    article,
    fill,
    varied_caption,
)


def test_articles():
    assert [article(x) for x in ("apple", "banana", "unicorn", "umbrella", "8 ball", "one-piece swimsuit")] == \
        ["an", "a", "a", "an", "an", "a"]
    assert fill("a picture of {a} {x}", "owl") == "a picture of an owl"


def test_held_out_phrasings_are_never_drawn_in_training():
    assert len(HELD_OUT_TEMPLATES) >= 5
    assert not set(HELD_OUT_TEMPLATES) & set(TRAIN_TEMPLATES)
    rng = np.random.default_rng(0)
    names = ["penguin", "red apple", "owl", "waving hand, dark skin tone", "flag of Japan"]
    drawn = {varied_caption(n, s, rng, CaptionPolicy(), colour, ("bird",), "openmoji")
             for _ in range(400) for n in names for s in ("openmoji", "twemoji") for colour in (None, "purple")}
    for template in HELD_OUT_TEMPLATES:
        frame = template.replace("{a} ", "").replace("{x}", "")
        for words in frame.split("  "):  # "a picture of " / " on a white background"
            if words.strip():
                assert not any(words.strip() in c for c in drawn), (template, words)


def test_no_training_phrasing_shares_a_word_with_a_held_out_one():
    # Near-copies ("draw me a ..." -> "paint me a ...") would teach the held-out phrasings by another
    # name; only the articles and "of" may be shared.
    def words(template: str) -> set[str]:
        return set(re.findall(r"[a-z']+", template.replace("{a}", "").replace("{x}", "")))
    held_out = set().union(*map(words, HELD_OUT_TEMPLATES)) - {"a", "an", "of"}
    assert {"picture", "draw", "cute"} <= held_out
    assert [t for t in TRAIN_TEMPLATES if words(t) & held_out] == []
    assert len(set(TRAIN_TEMPLATES)) == len(TRAIN_TEMPLATES)


def test_a_caption_without_a_style_only_ever_shows_the_default_style():
    rng = np.random.default_rng(0)
    twemoji = [varied_caption("penguin", "twemoji", rng, CaptionPolicy(), None, (), "openmoji") for _ in range(200)]
    openmoji = [varied_caption("penguin", "openmoji", rng, CaptionPolicy(), None, (), "openmoji") for _ in range(200)]
    assert all(c.endswith(", twemoji style") for c in twemoji)
    unstyled = [c for c in openmoji if not c.endswith(", openmoji style")]
    assert 60 < len(unstyled) < 140  # about half
    assert len(set(openmoji)) > 20  # many phrasings
    assert "penguin" in openmoji and "penguin, openmoji style" in openmoji  # the plain name stays common


def test_the_frame_goes_around_the_object_and_the_qualifier_stays_after_it():
    rng = np.random.default_rng(1)
    captions = {varied_caption("waving hand, dark skin tone", "openmoji", rng, CaptionPolicy(unstyled=1.0), None, (),
                               "openmoji") for _ in range(300)}
    assert all(c.endswith("waving hand, dark skin tone") or c.endswith(", dark skin tone") for c in captions)
    assert "waving hand icon, dark skin tone" in captions


def test_a_phrasing_set_draws_only_its_own_frames():
    rng = np.random.default_rng(2)
    core = {varied_caption("owl", "openmoji", rng, CaptionPolicy(template=1.0, alias=0.0, unstyled=1.0,
                                                                 templates=PHRASING_SETS["core"]), None, (), "openmoji")
            for _ in range(600)}
    assert core == {fill(t, "owl") for t in CORE_TEMPLATES}  # all 24 drawn, nothing else
    everyday = {varied_caption("owl", "openmoji", rng, CaptionPolicy(template=1.0, alias=0.0, unstyled=1.0), None, (),
                               "openmoji") for _ in range(600)}
    assert "i want an owl" in everyday and everyday <= {fill(t, "owl") for t in TRAIN_TEMPLATES}
    assert set(CORE_TEMPLATES) < set(PHRASING_SETS["everyday"]) == set(TRAIN_TEMPLATES)
