"""The /generate API's images: an enlarged timeline of a few steps per stage."""

from imagen.web.api_images import Timeline
from tests.tiny import fake_step


def test_timeline_keeps_a_few_evenly_spaced_steps_including_the_last():
    timeline = Timeline(per_stage=5)
    for i in range(25):
        timeline.add(fake_step(i, total=25))
    captions = [c for _, c in timeline.items]
    assert len(captions) == 10 and captions[-2:] == ["base 25/25 x_t", "base 25/25 x̂₀"]
    assert captions[0] == "base 1/25 x_t" and all(im.size == (256, 256) for im, _ in timeline.items)
