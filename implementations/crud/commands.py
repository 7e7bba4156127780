"""crud command side: the write-model handlers, each in its own transaction; events are dropped."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.write_model.command_side import CommandSide, drop_events


def command_side(engine: Engine) -> CommandSide:
    return CommandSide(engine, publish=drop_events)
