"""The check the projector benchmarks end with: the checkpoint is at the outbox head and the read
models agree with the write model on a handful of counts and sums (cheap; the runner's
reconcile compares every row)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.bench.clone import connect
from harness.bench.errors import BenchError
from implementations.projector.outbox_reader import OUTBOX
from implementations.projector.source import Source
from implementations.projector.status import projection_status

# (what, on the write model, on the read models): each pair must be equal once caught up.
AGREEMENT = (
    ("orders", "SELECT count(*) FROM orders", "SELECT count(*) FROM rm_orders"),
    ("order lines", "SELECT count(*) FROM order_lines", "SELECT count(*) FROM rm_order_lines"),
    ("customers", "SELECT count(*) FROM customers", "SELECT count(*) FROM rm_customers"),
    ("products", "SELECT count(*) FROM products", "SELECT count(*) FROM rm_products"),
    (
        "non-cancelled orders",
        "SELECT count(*) FROM orders WHERE status <> 'cancelled'",
        "SELECT coalesce(sum(order_count), 0) FROM rm_customers",
    ),
    (
        "non-cancelled revenue",
        "SELECT coalesce(sum(total_cents), 0) FROM orders WHERE status <> 'cancelled'",
        "SELECT coalesce(sum(total_spent_cents), 0) FROM rm_customers",
    ),
)


@dataclass(frozen=True)
class Agreement:
    what: str
    write: int
    read: int


def _select_all(dsn: str, queries: list[str]) -> tuple:
    with connect(dsn, truth=True) as conn:
        return conn.execute("SELECT " + ", ".join(f"({q})" for q in queries)).fetchone()


def check_projection(write_dsn: str, read_dsn: str, source: Source = OUTBOX) -> list[Agreement]:
    """The checkpoint is at the source's head and the read models agree with the write model;
    BenchError naming every difference otherwise."""
    status = projection_status(write_dsn, read_dsn, source=source)
    problems = []
    if status.events_behind or (status.head is not None and status.checkpoint != status.head):
        problems.append(
            f"checkpoint {status.checkpoint} is not the outbox head {status.head} "
            f"({status.events_behind} events behind)"
        )
    written = _select_all(write_dsn, [w for _, w, _ in AGREEMENT])
    projected = _select_all(read_dsn, [r for _, _, r in AGREEMENT])
    found = [
        Agreement(what, int(w), int(r))
        for (what, _, _), w, r in zip(AGREEMENT, written, projected, strict=True)
    ]
    problems += [
        f"{a.what}: write model {a.write:,}, read models {a.read:,}"
        for a in found
        if a.write != a.read
    ]
    if problems:
        raise BenchError("the read models do not match the write model: " + "; ".join(problems))
    return found
