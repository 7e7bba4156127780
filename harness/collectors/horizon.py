"""The xmin horizon over time (DESIGN section 6): the `horizon` table.

Each round finds, in each run database, the session whose snapshot or transaction id is oldest
(`backend_xmin`, `backend_xid`): the one holding back the horizon below which VACUUM may remove
dead row versions. A walsender counts too (a standby's `hot_standby_feedback` shows as its
backend_xmin). One row per database and round; when no session holds a snapshot, the row has
no pid and null ages. Replication slots' and prepared transactions' xmins are not looked at.
"""

from __future__ import annotations

from harness.collectors.base import TS, component_of
from harness.collectors.server_poll import ServerPoller

INTERVAL_S = 0.5  # 2 Hz

COLUMNS = {
    "ts": TS,
    "server": "str",
    "database": "str",
    "pid": "Int64",
    "component": "str",
    "backend_type": "str",
    "state": "str",
    "xmin_age_xids": "Int64",
    "xact_age_ms": "float64",
}

# age() of a null xid is null and greatest() skips nulls; the collector's own snapshot is not
# counted (its pid), nor are other databases' sessions (they do not hold this one's horizon).
QUERY = """
    SELECT now(), current_database(), a.pid, a.application_name, a.backend_type, a.state,
           greatest(age(a.backend_xmin), age(a.backend_xid)),
           greatest(extract(epoch FROM now() - a.xact_start) * 1000, 0)::float8
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT * FROM pg_stat_activity
        WHERE pid <> pg_backend_pid()
          AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
          AND (datname = current_database() OR backend_type = 'walsender')
        ORDER BY greatest(age(backend_xmin), age(backend_xid)) DESC, xact_start NULLS LAST
        LIMIT 1) AS a ON true
"""


class HorizonSampler(ServerPoller):
    """Polls each run database (role -> DSN) every `interval` s for the oldest xmin's holder:
    its pid, component (from application_name, else the backend type), state, the xmin's age in
    transactions and its transaction's age in ms (null for a walsender, which has none)."""

    name = "horizon"
    QUERY = QUERY
    COLUMNS = COLUMNS

    def __init__(self, databases: dict[str, str], interval: float = INTERVAL_S) -> None:
        super().__init__(databases, interval)

    def _row(self, role: str, row: tuple) -> tuple:
        ts, database, pid, app, btype, state, xids, age = row
        component = component_of(app) or (btype or "")
        return (ts, role, database, pid, component, btype, state, xids, age)
