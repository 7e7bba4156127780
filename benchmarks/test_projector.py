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
from implementations.domain.errors import TransactionAborted


def _readable_behind(projection, timeout: float = 10.0) -> int:
    """Events behind, once none is held back by another session's running transaction (an
    autovacuum's analyze in another database can hold one for a moment)."""
    deadline = time.monotonic() + timeout
    while (status := projection.status()).events_held_back:
        assert time.monotonic() < deadline, f"events held back by {status.held_back_by}"
        time.sleep(0.01)
    return status.events_behind


def _placed(impl, cmd):
    """Place `cmd`, again while it is refused for a conflict with a concurrent one, as a client
    would on 409 Retry-After (an event store's optimistic concurrency refuses more than locks)."""
    for _ in range(100):
        try:
            return impl.commands.place_order(cmd)
        except TransactionAborted:
            time.sleep(0.01)
    raise AssertionError(f"{cmd.idempotency_key} conflicted 100 times")


def test_projector_batch_apply(benchmark, cqrs_target, cqrs_orders, rounds, per_second):
    target, impl = cqrs_target, cqrs_target.impl
    projection = impl.projection
    checkouts = rounds(BATCH_SIZE, 200)  # an event or more each: a full batch (less when fast)
    pending: list[int] = []

    def setup():
        target.catch_up()
        commands = [cqrs_orders.next() for _ in range(checkouts)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda cmd: _placed(impl, cmd), commands))
        pending.append(_readable_behind(projection))
        return (), {}

    benchmark.group = "projector: batch apply"
    with projection.projector(batch_size=BATCH_SIZE) as projector:
        batch = benchmark.pedantic(projector.step, setup=setup, rounds=rounds(5), iterations=1)
    assert len(set(pending)) == 1 and pending[-1] >= checkouts  # the same work every round
    assert len(batch.events) == min(pending[-1], BATCH_SIZE)
    target.catch_up()
    status = projection.status()
    assert status.events_behind == 0 and status.checkpoint == status.head
    check_projection(*projection.dsns, source=projection.source)  # raises unless they agree
    benchmark.extra_info.update(
        target.info(
            "projector_batch_apply",
            batch_size=BATCH_SIZE,
            events_per_round=len(batch.events),
            events_per_checkout=pending[-1] / checkouts,
            events_per_second=per_second(benchmark, len(batch.events)),
        )
    )
