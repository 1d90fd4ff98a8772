"""The page's WordPiece tokenizer (imagen/web/static/tokenizer.js) against AutoTokenizer, the one the
Python pipeline uses, on a few hundred varied captions: emoji names, styles, punctuation, accents,
other scripts, emoji characters, odd whitespace, control characters and overlong prompts."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from imagen.text_encoder import resolve_text_encoder

NODE = shutil.which("node")
SCRIPT = Path(__file__).parent / "js" / "tokenize.mjs"

TRICKY = [
    "", " ", "red apple", "Red Apple, TWEMOJI style", "  many   spaces\tand\ttabs\nnew line ",
    "crème brûlée", "Café au lait", "naïve résumé", "İstanbul", "Straße", "ΑΘΗΝΑ", "Привет мир", "日本の国旗",
    "中文字符 and English", "한국어", "שלום", "مرحبا", "😀 grinning face 😀", "👩🏽‍🚀 astronaut", "❤️ heart",
    "a\u200bzero\u200bwidth", "soft\u00adhyphen", "bom\ufeffhere", "nbsp\u00a0space", "ideographic\u3000space",
    "control\x01char\x7f", "replacement \ufffd char", "[MASK] of a cat", "[cls] lower [SEP]", "a[UNK]b",
    "e-mail: a@b.com!", "$5 + 3 = <8> ^_^ `code` | ~tilde~", "«quotes» „more“ ‘single’", "100%", "3.14159",
    "supercalifragilisticexpialidocious", "x" * 120, "antidisestablishmentarianism " * 3,
    "word " * 40, "a picture of a penguin", "blue banana", "a green cat face", "purple sun", "flag: Japan",
    "keycap: #", "woman’s hat", "o’clock", "Ǆemal", "ﬁne ligature", "Ⅻ roman", "①②③", "ｆｕｌｌｗｉｄｔｈ",
    "mañana", "Ångström", "e\u0301 combining", "tab\u0009end", "\u2028line sep", "math ∑∫√", "™®©",
]


def captions() -> list[str]:
    """The tricky ones, every emoji name the data could use (a sample), and random mixes of both."""
    import emoji
    rng = random.Random(0)
    names = sorted({d["en"].strip(":").replace("_", " ") for d in emoji.EMOJI_DATA.values()})
    picked = rng.sample(names, 200)
    styles = ["", ", twemoji style", ", openmoji style", " in OpenMoji style"]
    mixed = [f"{rng.choice(['a ', 'the ', 'A picture of a ', ''])}{name}{rng.choice(styles)}" for name in picked]
    words = [w for c in TRICKY + picked for w in c.split()] or ["x"]
    random_mix = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(100)]
    return TRICKY + mixed + random_mix


@pytest.mark.skipif(NODE is None, reason="node is not installed: the page's tokenizer tests need Node.js 20+")
def test_the_javascript_tokenizer_matches_autotokenizer(tmp_path, text_encoder):
    spec = Path(resolve_text_encoder(text_encoder.name)) / "tokenizer.json"
    if not spec.is_file():
        pytest.skip(f"the text encoder {text_encoder.name} has no tokenizer.json beside it")
    texts = captions()
    assert len(texts) >= 300
    (tmp_path / "captions.json").write_text(json.dumps(texts))
    max_length = text_encoder.max_length
    result = subprocess.run([NODE, str(SCRIPT), str(spec), str(tmp_path / "captions.json"), str(max_length)],
                            capture_output=True, text=True, timeout=120, encoding="utf-8")
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(got) == len(texts)
    tok = text_encoder.tokenizer
    padded = tok(texts, padding="max_length", truncation=True, max_length=max_length)
    full = tok(texts, add_special_tokens=False)["input_ids"]
    mismatches = [(text, js["ids"], ids) for text, js, ids in zip(texts, got, full) if js["ids"] != ids]
    assert not mismatches, f"{len(mismatches)} captions tokenized differently, e.g. {mismatches[:3]}"
    for text, js, ids, mask in zip(texts, got, padded["input_ids"], padded["attention_mask"]):
        assert (js["inputIds"], js["attentionMask"]) == (ids, mask), text
        assert js["truncated"] == (len(tok(text)["input_ids"]) > max_length), text
