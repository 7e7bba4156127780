"""crud-replica command side: crud's, on the primary; every command returns as its consistency
token the primary's WAL insert position read once it has committed, which lies past its commit
record: a standby that has replayed up to it shows the command's effects."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from implementations.db import read
from implementations.write_model.command_side import CommandSide, drop_events

WAL_POSITION = "SELECT pg_current_wal_insert_lsn()::text"


class ReplicaCommandSide(CommandSide):
    def _handle(self, handler, cmd):
        result = super()._handle(handler, cmd)
        # after the commit (one more round trip): inside the transaction the commit record does
        # not exist yet, and no position read before it covers it
        lsn = read(self.engine, lambda conn: conn.exec_driver_sql(WAL_POSITION).scalar())
        return dataclasses.replace(result, token=lsn)


def command_side(engine: Engine) -> CommandSide:
    return ReplicaCommandSide(engine, publish=drop_events)
