"""cqrs-physical command side: the write model plus the outbox, on the write server only; it
never touches the read server, so checkout keeps working while that server is down."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.write_model import outbox
from implementations.write_model.command_side import CommandSide


def command_side(engine: Engine) -> CommandSide:
    return CommandSide(engine, publish=outbox.append)
