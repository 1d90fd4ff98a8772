"""The browser mode's schedule plot (schedule_plot.js) draws what the server's page draws
(live_view.schedule_curve and schedule_svg) for the same schedule, visited steps and current step."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from imagen.web.live_view import Frame, schedule_curve, schedule_svg
from tests.tiny import make_tiny_pipeline

NODE = shutil.which("node")
SCRIPT = Path(__file__).parent / "js" / "schedule.mjs"


def numbers(svg: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.?\d*", svg)]


@pytest.mark.skipif(NODE is None, reason="node is not installed: the page's module tests need Node.js 20+")
def test_the_pages_schedule_plot_is_the_servers(tmp_path, text_encoder):
    pipe = make_tiny_pipeline(text_encoder)
    (tmp_path / "alpha_bar.json").write_text(json.dumps(pipe._alpha_bar["base"].float().tolist()))
    result = subprocess.run([NODE, str(SCRIPT), str(tmp_path / "alpha_bar.json")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)

    curve = schedule_curve(pipe, "base")
    np.testing.assert_allclose(np.array(page["curve"]), np.array(curve), atol=1e-6)

    def frame(t: int, index: int) -> Frame:
        return Frame("base", index, 2, t, pipe.noise_level("base", t), "", "")
    server = schedule_svg(curve, [frame(999, 0), frame(500, 1)], frame(500, 1), "Base stage (64 px)")
    # The same elements in the same order, at the same coordinates (each printed to 0.1 unit).
    assert re.findall(r"<(\w+)", page["svg"]) == re.findall(r"<(\w+)", server)
    np.testing.assert_allclose(numbers(page["svg"]), numbers(server), atol=0.11)
    assert page["svg"].count('class="visited"') == 2 and 'data-timestep="500"' in page["svg"]
