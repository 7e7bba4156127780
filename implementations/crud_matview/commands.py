"""crud-matview command side: crud's, unchanged (the write-model handlers, each in its own
transaction; events are dropped), so checkout differs from crud's only by the refreshes beside it."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.write_model.command_side import CommandSide, drop_events


def command_side(engine: Engine) -> CommandSide:
    return CommandSide(engine, publish=drop_events)
