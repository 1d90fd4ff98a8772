"""How often a frame goes out while the model runs: the API at most MAX_FPS a second, the page as
fast as the server can send (frames never take more than half the time)."""

from __future__ import annotations

import time

from ..samplers import Step

MAX_FPS = 25.0  # the API's frame limit; the page paces itself by what the server can send


class FrameLimiter:
    """Lets a frame through at most MAX_FPS times a second, and always a stage's last step. On a
    CPU every step takes longer than that, so every step is shown; a fast GPU would otherwise
    queue frames faster than the page can draw them."""

    def __init__(self, max_fps: float = MAX_FPS):
        self.interval, self.last = 1.0 / max_fps, float("-inf")

    def ready(self, step: Step) -> bool:
        now = time.perf_counter()
        if step.is_last or now - self.last >= self.interval:
            self.last = now
            return True
        return False


class FramePacer:
    """The page's frames, paced by how fast they leave the server: while the caller is sending a
    frame the model waits, so a frame is skipped when the last one took longer to send than the
    model has computed since (frames never take more than half the time). A stage's last step is
    always sent. On a CPU at the defaults a step takes far longer than a send: every step is shown."""

    def __init__(self) -> None:
        self.resumed, self.send_cost = float("-inf"), 0.0

    def ready(self, step: Step) -> bool:
        return step.is_last or time.perf_counter() - self.resumed >= self.send_cost

    def sent(self, yielded_at: float) -> None:
        """Call when the generator resumes after yielding at `yielded_at`."""
        self.resumed = time.perf_counter()
        self.send_cost = self.resumed - yielded_at
