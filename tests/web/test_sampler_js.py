"""The JavaScript sampler (imagen/web/static/sampler.js) against the Python pipeline: this writes the
reference vectors (tests/web/js_reference.py) and runs `node --test` on tests/web/js/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .js_reference import CASES, write_reference

NODE = shutil.which("node")
JS_TESTS = Path(__file__).parent / "js" / "sampler.test.mjs"


@pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript sampler's tests need Node.js 20+")
def test_the_javascript_sampler_matches_the_python_pipeline_step_by_step(tmp_path, text_encoder):
    reference = write_reference(tmp_path, text_encoder)
    result = subprocess.run([NODE, "--test", str(JS_TESTS)], env={**os.environ, "IMAGEN_JS_REFERENCE": str(reference)},
                            capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # Every case ran against the reference: none was skipped for want of it.
    assert re.search(r"^# skipped 0$", result.stdout, re.M), report
    assert int(re.search(r"^# pass (\d+)$", result.stdout, re.M).group(1)) >= len(CASES) + 1, report
    for line in re.findall(r"^# .*max \|JS - Python\|.*$", result.stdout, re.M):
        print(line)
