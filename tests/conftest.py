"""Real PostgreSQL for the test suite: one write and one read server started for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers, use_servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A throwaway server pair owned by this test session (never a developer's `db up` pair)."""
    saved = {k: os.environ.pop(k, None) for k in (WRITE_DSN_ENV, READ_DSN_ENV)}
    os.environ["CQRS_BENCH_HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        with use_servers(announce=lambda _msg: None) as pair:
            yield pair
    finally:
        os.environ.pop("CQRS_BENCH_HOME", None)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
