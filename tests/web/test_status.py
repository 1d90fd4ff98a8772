"""The status line's sentences."""

import pytest

from imagen.web.status import describe_step


def test_status_line_speaks_of_stage_step_timestep_and_noise(tiny_pipeline):
    steps = list(tiny_pipeline.generate("red apple", seed=0, steps=3, sr_steps=2))
    first, last = steps[0], steps[-1]
    # each step carries the noise level of its x_t: the schedule's, at its timestep
    assert first.noise_level == tiny_pipeline.noise_level(first.stage, first.timestep)
    assert last.noise_level == tiny_pipeline.noise_level(last.stage, last.timestep)
    assert first.noise_level > 0.99 and last.noise_level < first.noise_level  # pure noise first, less later
    line = describe_step(first, 0.25)
    assert "Base stage (64 px): step 1 of 3" in line and f"timestep {first.timestep}" in line
    assert f"noise level {first.noise_level:.2f}" in line and "0.2 s" in line
    assert "Super-resolution stage (256 px): step 2 of 2" in describe_step(last, 1.0)
    with pytest.raises(ValueError, match="timestep"):
        tiny_pipeline.noise_level("base", 1000)
