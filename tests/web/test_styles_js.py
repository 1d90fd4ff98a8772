"""The browser mode's styles.js gives the server page's answers (imagen/web/styles.py): the picked style
is added to a prompt that names none and replaces a trailing one, on every prompt of a varied list."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imagen.web.styles import AS_TYPED, restyle, with_style

NODE = shutil.which("node")
SCRIPT = Path(__file__).parent / "js" / "styles.mjs"
STYLES = [["openmoji style", "twemoji style"], ["twemoji style"], []]
PROMPTS = [
    "penguin", "rocket, Twemoji style", "a twemoji cat", "cat face,", "cat face,,, ", "rocket, openmoji style",
    "rocket openmoji style", "ROCKET, OPENMOJI STYLE", "  spaced  out , twemoji style  ", "", "   ",
    "openmoji style", "a picture of a penguin", "twemojis everywhere", "openmoji", "red apple,twemoji style",
    "style", "a, b, c", "crème brûlée, openmoji style", "🐧", "blue banana, twemoji style, openmoji style",
]


@pytest.mark.skipif(NODE is None, reason="node is not installed: the page's module tests need Node.js 20+")
def test_the_pages_styles_match_the_servers(tmp_path):
    cases = [[p, s, styles] for styles in STYLES for p, s in itertools.product(PROMPTS, [*styles, AS_TYPED])]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    result = subprocess.run([NODE, str(SCRIPT), str(tmp_path / "cases.json")], capture_output=True, text=True,
                            timeout=60, encoding="utf-8")
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    want = [[with_style(p, s, styles), restyle(p, s, styles)] for p, s, styles in cases]
    assert len(got) == len(cases)
    mismatches = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    assert not mismatches, mismatches[:5]
    assert sum(g[0] != c[0] for c, g in zip(cases, got)) >= 10  # styles really were added, not passed through
