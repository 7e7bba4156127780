"""Projector benchmark: events per second of applying one batch, per CQRS implementation.

Each round's setup (not timed) catches up whatever earlier benchmarks appended, then places one
batch's worth of checkouts through the implementation (the events it really writes). The timed
call is one projector step: read the batch in commit order and apply it to the read models with
the checkpoint, at the projector's default batch size. Afterwards the checkpoint must be at the
outbox head and the read models must agree with the write model.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from harness.bench.agreement import check_projection
from harness.deploy.projector import BATCH_SIZE
from implementations.projector.engine import Projector
from implementations.projector.status import projection_status


def _readable_behind(write_dsn: str, read_dsn: str, timeout: float = 10.0) -> int:
    """Events behind, once none is held back by another session's running transaction (an
    autovacuum's analyze in another database can hold one for a moment)."""
    deadline = time.monotonic() + timeout
    while (status := projection_status(write_dsn, read_dsn)).events_held_back:
        assert time.monotonic() < deadline, f"events held back by {status.held_back_by}"
        time.sleep(0.01)
    return status.events_behind


def test_projector_batch_apply(benchmark, cqrs_target, cqrs_orders, rounds, per_second):
    target, impl = cqrs_target, cqrs_target.impl
    write_dsn, read_dsn = impl.projection.dsns
    checkouts = rounds(BATCH_SIZE, 200)  # one event each: a full batch (a fifth of one when fast)
    pending: list[int] = []

    def setup():
        target.catch_up()
        commands = [cqrs_orders.next() for _ in range(checkouts)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(impl.commands.place_order, commands))
        pending.append(_readable_behind(write_dsn, read_dsn))
        return (), {}

    benchmark.group = "projector: batch apply"
    with Projector(write_dsn, read_dsn, batch_size=BATCH_SIZE) as projector:
        batch = benchmark.pedantic(projector.step, setup=setup, rounds=rounds(5), iterations=1)
    assert len(batch.events) == pending[-1] == checkouts and len(set(pending)) == 1
    status = projection_status(write_dsn, read_dsn)
    assert status.events_behind == 0 and status.checkpoint == status.head
    check_projection(write_dsn, read_dsn)  # raises unless the read models agree
    benchmark.extra_info.update(
        target.info(
            "projector_batch_apply",
            batch_size=BATCH_SIZE,
            events_per_round=checkouts,
            events_per_second=per_second(benchmark, checkouts),
        )
    )
