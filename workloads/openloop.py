"""Open loop: requests arrive at seeded Poisson times whatever the system's speed.

One scheduler per user class draws arrival times and, at each, the class's next request (in
order, so the requests are the same as in closed loop for the same seed); each arrival runs in
its own greenlet. A pool caps the requests in flight: beyond it, arrivals wait for a slot, and
the wait counts in their "intended" latency (completion minus intended start), so a slow system
cannot hide its queueing (no coordinated omission). At the end, `halt()` ends the schedulers and
`stop()` lets the requests in flight finish (up to a grace period) before killing the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from random import Random

from gevent.event import Event
from gevent.pool import Pool

from workloads.users import Request, Sink

IDLE_S = 0.1  # how often a class with rate 0 looks again
GRACE_S = 5.0  # how long stop() waits for the requests in flight


class OpenLoop:
    def __init__(self, max_in_flight: int, sink: Sink) -> None:
        self.pool = Pool(max_in_flight)
        self.sink = sink
        self.halted = Event()

    def run(
        self,
        rate: Callable[[], float],
        arrivals: Random,
        plan: Callable[[], Request],
        perform: Callable[[Request], str | None],
    ) -> None:
        """Schedule one class's arrivals until `halt()` (or its greenlet is killed).

        rate(): the class's arrivals per second now (the shape may change it).
        """
        intended = time.perf_counter()
        while not self.halted.is_set():
            now_rate = rate()
            if now_rate <= 0:
                self.halted.wait(IDLE_S)
                intended = max(intended, time.perf_counter())
                continue
            intended += -math.log(1.0 - arrivals.random()) / now_rate
            delay = intended - time.perf_counter()
            if delay > 0 and self.halted.wait(delay):
                return
            self.pool.spawn(self._one, plan(), intended, perform)  # waits while the pool is full

    def _one(
        self, request: Request, intended: float, perform: Callable[[Request], str | None]
    ) -> None:
        error = perform(request)
        self.sink.record(
            request.operation, "intended", (time.perf_counter() - intended) * 1e6, error
        )

    def halt(self) -> None:
        self.halted.set()

    def stop(self, grace_s: float = GRACE_S) -> None:
        self.halt()
        self.pool.join(timeout=grace_s)
        self.pool.kill()
