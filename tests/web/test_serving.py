"""The served pipeline: loaded once, however many first requests arrive together."""

import threading

from imagen.web.serving import SharedPipeline


def test_the_pipeline_loads_once_for_many_first_requests_at_once(tiny_checkpoint):
    class CountingLoads(SharedPipeline):
        loads = 0

        def _load(self):
            CountingLoads.loads += 1
            return super()._load()

    shared, barrier, got = CountingLoads(tiny_checkpoint, device="cpu"), threading.Barrier(4), []
    threads = [threading.Thread(target=lambda: (barrier.wait(), got.append(shared.get()))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert CountingLoads.loads == 1 and len(got) == 4 and all(p is got[0] for p in got)
