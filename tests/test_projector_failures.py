"""The projector's failure modes that event stores keep shipping, each on real PostgreSQL.

Out-of-order commits, rolled-back holes, idle transactions holding the horizon, a projector killed
mid-batch, two projectors at once, transactions larger than a batch, live projection against a
rebuild, lost notifications, read-your-writes bounds and idempotent retries.

Every test runs on a (write database, read database) pair from `projection_pair`. Today that is
cqrs-logical's pair: the read models in the write database itself. The tests only use the two
DSNs, so a read-server pair (cqrs-physical) is one more entry in READ_SIDES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from implementations.cqrs_logical.commands import command_side
from implementations.db import make_engine
from implementations.projector.engine import Projector
from implementations.read_model.queries import ReadModelQueries
from implementations.write_model.command_side import CommandSide

ROOT = Path(__file__).resolve().parents[1]
COMMANDS_APP = "cqrs-bench:failures-commands"
READ_SIDES = ["same-database"]  # where the read models live; a later issue adds the read server


# --- the pair under test -------------------------------------------------------------------------


@dataclass
class Pair:
    """An installed projection: outbox in `write_dsn`, read models in `read_dsn`, no projector."""

    write_dsn: str
    read_dsn: str
    engine: Engine  # the command side's, on the write database

    @property
    def dsns(self) -> tuple[str, str]:
        return self.write_dsn, self.read_dsn

    @property
    def commands(self) -> CommandSide:
        return command_side(self.engine)

    def queries(self, wait_bound: float) -> ReadModelQueries:
        engine = make_engine(self.read_dsn, component="failures-queries", pool_size=2)
        return ReadModelQueries(engine, wait_bound=wait_bound)

    def projector(self, **options) -> Projector:
        return Projector(*self.dsns, **options)


@pytest.fixture(params=READ_SIDES)
def read_side(request) -> Callable[[str], str]:
    """The read-model database that goes with a write database, for the parametrized pair."""
    assert request.param == "same-database"
    return lambda write_dsn: write_dsn
