"""Lock waits, deadlocks, serialization failures and lock timeouts from the server log: the
`lock_waits` table.

Embedded servers (harness/postgres/server.py) log to `<root>/server.log` beside `<root>/data`, through
pg_ctl -l, with log_line_prefix '%m [%p] %a %u@%d ', log_lock_waits=on and deadlock_timeout=200ms:
a session waiting 200 ms for a lock logs "still waiting", and "acquired" when it gets it.

LogTail(path).start() remembers where the log ends; read() parses what was appended since (all of
it, each time: call it once at the end). Only the first line of a message is parsed (DETAIL,
STATEMENT and CONTEXT lines are skipped). Log rotation is not followed: a log that shrank is read
from its beginning. Messages must be in English (the embedded servers run with LC_ALL=C).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg

from harness.collectors.base import TS, component_of, typed_frame

COLUMNS = {
    "ts": TS,
    "server": "str",
    "pid": "int64",
    "component": "str",
    "database": "str",
    "event": "str",
    "lock_mode": "str",
    "object": "str",
    "waited_ms": "float64",
    "message": "str",
}

# '%m [%p] %a %u@%d ' then "LEVEL:  message". %a may be empty or hold spaces; %u and %d are
# empty for background processes.
LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?P<tz>\S+) \[(?P<pid>\d+)\] "
    r"(?P<app>.*?) ?(?P<user>[^ @]*)@(?P<db>\S*) "
    r"(?P<level>LOG|ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|DEBUG\d?|DETAIL|HINT|CONTEXT|STATEMENT)"
    r":  (?P<message>.*)$"
)
WAIT = re.compile(
    r"^process \d+ (?P<what>still waiting for|acquired) (?P<mode>\S+) on (?P<object>.+) "
    r"after (?P<ms>[\d.]+) ms$"
)
EVENTS = (  # (event, message prefix), for ERROR lines
    ("deadlock", "deadlock detected"),
    ("serialization_failure", "could not serialize access due to"),
    ("lock_timeout", "canceling statement due to lock timeout"),
)


def log_path(datadir: Path | str) -> Path:
    """Where an EmbeddedServer with this data directory writes its log (<root>/server.log)."""
    return Path(datadir).parent / "server.log"


def log_path_for(dsn: str) -> Path | None:
    """The log file of the server at `dsn`, if this machine can know it: the logging collector's
    current file, else the server.log beside an embedded server's data directory. None when
    unknown (a remote server, or no superuser to ask): the caller skips this collector."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            datadir = Path(conn.execute("SHOW data_directory").fetchone()[0])
            current = conn.execute("SELECT pg_current_logfile('stderr')").fetchone()[0]
    except psycopg.Error:
        return None
    if current:
        path = datadir / current  # absolute `current` wins
        return path if path.is_file() else None
    path = log_path(datadir)
    return path if path.is_file() else None


def _timestamp(date: str, tz: str, default_tz) -> datetime:
    ts = datetime.fromisoformat(date)
    if tz in ("UTC", "GMT", "Z"):
        zone = UTC
    elif m := re.fullmatch(r"([+-])(\d\d):?(\d\d)?", tz):
        sign = 1 if m[1] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(m[2]), minutes=int(m[3] or 0)))
    else:  # an abbreviation such as CET: the caller's log_timezone
        zone = default_tz
    return ts.replace(tzinfo=zone)


def parse_line(line: str, server: str, default_tz=UTC) -> dict | None:
    """The lock_waits row a log line stands for, or None if it is not one of its events."""
    m = LINE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    message, level = m["message"], m["level"]
    event = mode = obj = None
    waited = float("nan")
    if level == "LOG" and (w := WAIT.match(message)):
        event = "acquired" if w["what"] == "acquired" else "still_waiting"
        mode, obj, waited = w["mode"], w["object"], float(w["ms"])
    elif level == "ERROR":
        event = next((name for name, prefix in EVENTS if message.startswith(prefix)), None)
    if event is None:
        return None
    return {
        "ts": _timestamp(m["date"], m["tz"], default_tz),
        "server": server,
        "pid": int(m["pid"]),
        "component": component_of(m["app"]),
        "database": m["db"],
        "event": event,
        "lock_mode": mode or "",
        "object": obj or "",
        "waited_ms": waited,
        "message": line.rstrip("\r\n"),
    }


def parse_lines(lines, server: str, default_tz=UTC) -> pd.DataFrame:
    """The `lock_waits` frame of some log lines."""
    rows = (parse_line(line, server, default_tz) for line in lines)
    return typed_frame([row for row in rows if row is not None], COLUMNS)


class LogTail:
    """The part of a server log written after start().

    server: the role named in the `server` column. log_timezone: an IANA zone for timestamps
    whose zone is an abbreviation other than UTC/GMT (the embedded servers log in UTC).
    """

    def __init__(self, path: Path | str, server: str = "", log_timezone: str | None = None) -> None:
        self.path = Path(path)
        self.server = server
        self.tz = ZoneInfo(log_timezone) if log_timezone else UTC
        self.offset: int | None = None

    def start(self) -> LogTail:
        self.offset = self.path.stat().st_size
        return self

    def lines(self) -> list[str]:
        """Complete lines appended since start() (a line still being written is left out)."""
        if self.offset is None:
            raise RuntimeError("LogTail.read() before start()")
        with self.path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(self.offset if size >= self.offset else 0)
            data = f.read()
        data = data[: data.rfind(b"\n") + 1]
        return data.decode("utf-8", errors="replace").splitlines()

    def read(self) -> pd.DataFrame:
        return parse_lines(self.lines(), self.server, self.tz)
