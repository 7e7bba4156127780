"""cqrs-logical command side: the write model, plus its events appended to the outbox in the same
transaction, and nothing else for the read side. Results carry the consistency token."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.write_model import outbox
from implementations.write_model.command_side import CommandSide


def command_side(engine: Engine) -> CommandSide:
    return CommandSide(engine, publish=outbox.append)
