"""How often frames go out: the API's limit and the page's pacing by the cost of a send."""

import time

from imagen.web.pacing import FrameLimiter, FramePacer
from tests.tiny import fake_step


def test_frame_pacer_sends_every_step_while_sending_is_cheap_and_skips_when_it_is_not():
    pacer = FramePacer()
    assert pacer.ready(fake_step(0))
    pacer.sent(time.perf_counter())  # a send that took no time
    assert pacer.ready(fake_step(1))
    pacer.sent(time.perf_counter() - 0.2)  # the last send took 0.2 s: the next step comes too soon
    assert not pacer.ready(fake_step(1)) and pacer.ready(fake_step(2))  # a stage's last step always goes
    time.sleep(0.21)
    assert pacer.ready(fake_step(1))


def test_frame_limiter_drops_frames_only_when_they_come_too_fast():
    limiter = FrameLimiter(max_fps=10)
    assert limiter.ready(fake_step(0, total=25)) and not limiter.ready(fake_step(1, total=25))  # 0.1 s has not passed
    assert limiter.ready(fake_step(24, total=25))  # a stage's last step is always shown
    time.sleep(0.11)
    assert limiter.ready(fake_step(2, total=25))
