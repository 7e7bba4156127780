"""The results format: the one source of truth for every table a run writes.

`results/README.md` carries a section generated from this module (`describe_markdown`), and a
test checks that it matches, so the documentation cannot drift from what the code writes and
validates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pyarrow as pa

from implementations import registry

# Version 2 added users.parquet, waits.blocker_component and verification.phase (`since` on a
# table or column). Version 3 added refreshes.parquet and freshness rows for architectures with a
# refresher; replay.parquet, the `standby` server and `standby_server` component, and lag,
# event_lag and freshness rows for architectures that read a standby. Version 4 added
# latency.retries and latency_summary.retries, horizon.parquet, table_stats.parquet and
# wait_profile.parquet. Version 5 added the `machine` rows of resources.parquet and, in run.json,
# each implementation's `cpu_capacity` and `cpu_quota` (the bottlenecks of each load level).
RESULTS_SCHEMA_VERSION = 5
KNOWN_SCHEMA_VERSIONS = frozenset({1, 2, 3, 4, 5})

Kind = Literal["timestamp", "int", "float", "str", "bool"]

PHASES = ("warmup", "measure", "cooldown")
LATENCY_KINDS = ("service", "intended", "visibility")
SERVERS = ("write", "read", "standby")
RESOURCE_COMPONENTS = (
    "write_server",
    "read_server",
    "standby_server",
    "service",
    "projector",
    "refresher",
    "locust",
    "runner",
    "machine",
)
LOCK_EVENTS = ("still_waiting", "acquired", "deadlock", "serialization_failure", "lock_timeout")
RUN_STATUSES = ("running", "complete", "incomplete")

# The canonical Arrow type written for each kind. The validator accepts any type of the same
# kind (any integer width, string or large_string, timestamps of any unit in UTC).
ARROW_TYPES: dict[str, pa.DataType] = {
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
}


def has_event_lag(impl: str) -> bool:
    """True for the architectures whose commits reach their reads later, one by one (and so have
    lag and event lag): those with a projection or reading a standby, as their architecture.toml
    declares (False for one this tree does not have)."""
    known = registry.architectures().get(impl)
    return known is not None and (known.projection or known.reads_standby)


def may_have_rows(table: Table, impl: str) -> bool:
    """Whether `impl` may have rows in `table`: the lag tables for architectures with a
    projection or a standby, the lagging tables (freshness) for those with a projection, a
    refresher or a standby."""
    if table.lagging_only:
        return registry.lagging(impl)
    return has_event_lag(impl) or not table.projection_only


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    unit: str = ""
    nullable: bool = False
    values: tuple[str, ...] | None = None  # the only values allowed (str columns)
    non_negative: bool = False
    since: int = 1  # the results schema version that added it

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.kind]


@dataclass(frozen=True)
class Table:
    name: str  # without ".parquet"
    description: str
    columns: tuple[Column, ...]
    # In a complete run every implementation (those whose answers lag only, if lagging_only)
    # has rows.
    rows_required: bool = True
    # Only architectures with a projection or a standby may have rows (lag per source commit).
    projection_only: bool = False
    # Only architectures whose dashboards may lag (a projection, a refresher or a standby) may
    # have rows.
    lagging_only: bool = False
    notes: str = ""
    since: int = 1  # the results schema version that added it

    def must_have_rows(self, impl: str) -> bool:
        return self.rows_required and may_have_rows(self, impl)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def at_version(self, version: int) -> Table:
        """The table as a run of results schema `version` has it (without later columns)."""
        return replace(self, columns=tuple(c for c in self.columns if c.since <= version))

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns],
            metadata={
                b"cqrs_bench.results_schema_version": str(RESULTS_SCHEMA_VERSION).encode(),
                b"cqrs_bench.table": self.name.encode(),
            },
        )


# ---------------------------------------------------------------------------------------------
# Column helpers: the same column in several tables is described once.

IMPL = Column(
    "impl",
    "str",
    "The architecture: its folder's name under implementations/, with `-` for `_` "
    "(one of run.json's `impls`).",
)


def _ts(name: str, description: str, nullable: bool = False) -> Column:
    return Column(name, "timestamp", description, unit="UTC, µs", nullable=nullable)


def _ms(name: str, description: str, nullable: bool = False, non_negative: bool = True) -> Column:
    return Column(
        name, "float", description, unit="ms", nullable=nullable, non_negative=non_negative
    )


def _count(name: str, description: str, since: int = 1) -> Column:
    return Column(name, "int", description, non_negative=True, since=since)


def _percentiles(when_empty: str) -> tuple[Column, ...]:
    points = (
        ("p50", "50th"),
        ("p90", "90th"),
        ("p95", "95th"),
        ("p99", "99th"),
        ("p999", "99.9th"),
    )
    cols = [
        _ms(f"{p}_ms", f"{label} percentile of successful calls; {when_empty}.", True)
        for p, label in points
    ]
    cols.append(_ms("max_ms", f"Slowest successful call; {when_empty}.", True))
    cols.append(_ms("mean_ms", f"Mean of successful calls; {when_empty}.", True))
    return tuple(cols)


OPERATION = Column(
    "operation", "str", "The operation, as Locust names it (e.g. `checkout`, `dashboard_sales`)."
)
LATENCY_KIND = Column(
    "kind",
    "str",
    "`service`: request sent to response received; `intended`: from the time the request "
    "was scheduled to be sent (corrects coordinated omission); `visibility`: a probe user's "
    "write until its read shows it (read-your-writes).",
    values=LATENCY_KINDS,
)
PHASE = Column("phase", "str", "Phase of the load the second belongs to.", values=PHASES)
SERVER = Column("server", "str", "Which PostgreSQL server.", values=SERVERS)
DATABASE = Column("database", "str", 'Database name (`""` when none, e.g. background workers).')
PG_COMPONENT = Column(
    "component",
    "str",
    "Who the session belongs to: `X` from its `application_name` `cqrs-bench:X` (`service`, "
    '`projector`, `runner`, ...); otherwise the `application_name` as it is (`""` if none).',
)

TABLES: tuple[Table, ...] = (
    Table(
        "latency",
        "Client-side latency per second, operation and kind, from HdrHistograms.",
        (
            IMPL,
            _ts("second", "Start of the second."),
            Column("elapsed_s", "float", "`second` minus the start of the load.", unit="s"),
            PHASE,
            OPERATION,
            LATENCY_KIND,
            _count("count", "Successful calls completed in the second."),
            _count("errors", "Failed calls completed in the second."),
            _count(
                "retries",
                "Times the implementation ran these calls again after a serialization failure, "
                "a deadlock or (event-sourced) a version conflict (each call at most `--retries` "
                "times; what still failed is an error `serialization_failure`, `deadlock` or "
                "`version_conflict`).",
                since=4,
            ),
            *_percentiles("NaN when count is 0"),
            Column(
                "hdr",
                "str",
                "The second's HdrHistogram of successful calls in µs, base64-encoded "
                "(`HdrHistogram.encode`), for exact merging.",
            ),
        ),
        notes="One row per second × operation × kind in which the operation ran.",
    ),
    Table(
        "latency_summary",
        "The measure phase per operation and kind, merged exactly from the per-second "
        "HdrHistograms.",
        (
            IMPL,
            OPERATION,
            LATENCY_KIND,
            _count("count", "Successful calls in the measure phase."),
            _count("errors", "Failed calls in the measure phase."),
            _count(
                "retries", "Retries of the calls in the measure phase (see `latency`).", since=4
            ),
            Column("seconds", "float", "Measured duration.", unit="s", non_negative=True),
            Column("rate_per_s", "float", "count / seconds.", unit="1/s", non_negative=True),
            *_percentiles("NaN when count is 0"),
        ),
    ),
    Table(
        "errors",
        "Failed calls per second, operation, kind and error.",
        (
            IMPL,
            _ts("second", "Start of the second."),
            PHASE,
            OPERATION,
            LATENCY_KIND,
            Column(
                "error",
                "str",
                "The error: HTTP status and API error code (e.g. `409 out_of_stock`), or the "
                "exception type for transport errors.",
            ),
            _count("count", "Failures of this kind in the second."),
        ),
        rows_required=False,
        notes="No rows when nothing failed.",
    ),
    Table(
        "users",
        "Users of each class acting in each second, as the Locust processes counted them: "
        "spawned by Locust and let act by the load shape (closed loop: the user's index is "
        "below the class's current target; open loop: the class's schedulers while its "
        "arrival rate is above 0), summed over the processes.",
        (
            IMPL,
            _ts("second", "Start of the second."),
            Column("elapsed_s", "float", "`second` minus the start of the load.", unit="s"),
            PHASE,
            Column(
                "user_class",
                "str",
                "The Locust user class (`Shopper`, `Analyst`, `Merchandiser`, `Prober`): one "
                "row per class of the mix.",
            ),
            _count("users", "How many of its users were acting, counted at the second's end."),
        ),
        notes="One row per second × user class, for the seconds the Locust processes wrote "
        "(those with a request or an acting user). Runs of version 1 have no such table.",
        since=2,
    ),
    Table(
        "waits",
        "Active-session samples of `pg_stat_activity` at about 10 Hz, one row per session and "
        "sample (the sampler's own session excluded).",
        (
            IMPL,
            _ts("ts", "When the sample was taken."),
            _count("sample", "Sample number, from 0; rows of one sample share it."),
            SERVER,
            DATABASE,
            Column("pid", "int", "Backend process id."),
            PG_COMPONENT,
            Column("backend_type", "str", "`client backend`, `autovacuum worker`, ..."),
            Column("state", "str", '`active`, `idle`, `idle in transaction`, ... (`""` if null).'),
            Column(
                "wait_event_type", "str", '`Lock`, `LWLock`, `IO`, `Client`, ...; `""` = on CPU.'
            ),
            Column("wait_event", "str", 'The wait event (`""` = on CPU).'),
            Column(
                "blocked_by",
                "int",
                "How many sessions block this one (`cardinality(pg_blocking_pids(pid))`, asked "
                "only of sessions waiting on a Lock); 0 when not blocked.",
                non_negative=True,
            ),
            Column(
                "blocker_component",
                "str",
                "The components of the sessions blocking this one (as `component`; a blocker "
                "without `application_name` by its `backend_type`, `?` for one no longer listed "
                'or a prepared transaction), sorted, unique, joined by `,`; `""` when not '
                'waiting on a Lock or not blocked. Runs of version 1 lack it (read as `""`).',
                since=2,
            ),
            _ms("xact_age_ms", "Age of the session's open transaction; null when none.", True),
            Column(
                "query_id", "int", "`pg_stat_activity.query_id`; null when unknown.", nullable=True
            ),
        ),
    ),
    Table(
        "wait_profile",
        "Wait events of the write server's sessions of the run database as the "
        "`pg_wait_sampling` extension samples them inside the server (every backend every 10 ms, "
        "no client round trips): its cumulative `pg_wait_sampling_profile`, read about once a "
        "second and turned into the samples each session gained per wait event and interval. "
        "Collected only when the server preloads the extension and `CREATE EXTENSION IF NOT "
        "EXISTS pg_wait_sampling` succeeds in the run database; run.json's `wait_profile` says "
        "whether it was and why not, `wait_sampler` whether the command sessions' wait shares "
        "come from it (`pg_wait_sampling`: only when it samples backends on CPU too, extension "
        "1.1.6+) or from waits.parquet (`activity`).",
        (
            IMPL,
            _ts("ts", "Start of the interval (the server's `now()` at the read before)."),
            _ms("interval_ms", "Length of the interval."),
            SERVER,
            DATABASE,
            Column("pid", "int", "Backend process id."),
            PG_COMPONENT,
            Column("backend_type", "str", "`client backend`, `autovacuum worker`, ..."),
            Column(
                "wait_event_type",
                "str",
                '`Lock`, `LWLock`, `IO`, `Client`, ...; `""` = on CPU (sampled by extension '
                "1.1.6+ with `pg_wait_sampling.sample_cpu` on only).",
            ),
            Column("wait_event", "str", 'The wait event (`""` on CPU).'),
            _count(
                "samples",
                "Samples of the session in that wait during the interval, > 0 (one stands for "
                "10 ms at the default `pg_wait_sampling.profile_period`). An idle session is "
                "sampled in `Client`/`ClientRead`, as is one between its transaction's "
                "statements.",
            ),
        ),
        rows_required=False,
        notes="One row per interval, session and wait event with samples; no rows (and no file "
        "needed) when the extension was not used.",
        since=4,
    ),
    Table(
        "horizon",
        "The xmin horizon of each run database, sampled at about 2 Hz: the session whose "
        "snapshot or transaction id is oldest (`backend_xmin`, `backend_xid` of "
        "`pg_stat_activity`; sessions of that database, and walsenders, which carry a standby's "
        "`hot_standby_feedback`), i.e. the one keeping VACUUM from removing newer dead row "
        "versions. Replication slots and prepared transactions are not looked at.",
        (
            IMPL,
            _ts("ts", "When the sample was taken (the server's `now()`)."),
            SERVER,
            DATABASE,
            Column(
                "pid",
                "int",
                "The holder's backend process id; null when none held one.",
                nullable=True,
            ),
            Column(
                "component",
                "str",
                "The holder's component (as `component` in waits; a session without "
                '`application_name` by its `backend_type`); `""` when none held one.',
            ),
            Column("backend_type", "str", '`client backend`, `walsender`, ... (`""` if none).'),
            Column("state", "str", '`active`, `idle in transaction`, ... (`""` if none).'),
            Column(
                "xmin_age_xids",
                "int",
                "`age()` of its xmin (or xid): transactions begun since; null when none.",
                nullable=True,
                non_negative=True,
            ),
            _ms(
                "xact_age_ms",
                "Age of its transaction (`now() - xact_start`); null when none held one, or for "
                "a walsender.",
                True,
            ),
        ),
        notes="One row per database and sample, also when no session held a snapshot.",
        since=4,
    ),
    Table(
        "table_stats",
        "Statistics of every table of the public schema of each run database (not a standby's), "
        "sampled every 2 s: `pg_stat_user_tables` (as the backends have flushed them, at most "
        "about once a second) and `pg_relation_size`, `pg_indexes_size`.",
        (
            IMPL,
            _ts("ts", "When the sample was taken (the server's `now()`)."),
            SERVER,
            Column("database", "str", "The run's database on that server."),
            Column("relation", "str", "The table (or materialized view)."),
            _count("live_tuples", "`n_live_tup`: estimated live rows."),
            _count("dead_tuples", "`n_dead_tup`: estimated dead row versions not yet vacuumed."),
            _count("updates", "`n_tup_upd`: rows updated, cumulative."),
            _count("hot_updates", "`n_tup_hot_upd`: of them, HOT updates (no index entry)."),
            _count("vacuums", "`vacuum_count + autovacuum_count`, cumulative."),
            Column("table_bytes", "int", "Main fork size.", unit="bytes", non_negative=True),
            Column(
                "index_bytes", "int", "Size of all its indexes.", unit="bytes", non_negative=True
            ),
        ),
        notes="One row per table and sample.",
        since=4,
    ),
    Table(
        "db_stats",
        "Counters of `pg_stat_database` (and similar) before and after the measure phase.",
        (
            IMPL,
            SERVER,
            DATABASE,
            Column(
                "stat",
                "str",
                "Counter name (`xact_commit`, `xact_rollback`, `deadlocks`, "
                "`conflicts`, `blks_read`, ...); on a standby `conflicts` counts the queries "
                "it cancelled for replay, and `confl_lock`, `confl_snapshot`, "
                "`confl_bufferpin`, `confl_deadlock`, `confl_tablespace` "
                "(`pg_stat_database_conflicts`) the same by cause.",
            ),
            Column("before", "float", "Value at the start of the measure phase."),
            Column("after", "float", "Value at its end."),
            Column("delta", "float", "after − before."),
        ),
    ),
    Table(
        "statements",
        "`pg_stat_statements` per statement at the end of the run (reset at its start).",
        (
            IMPL,
            SERVER,
            DATABASE,
            Column("queryid", "int", "`pg_stat_statements.queryid`."),
            Column("query", "str", "Normalized statement text."),
            _count("calls", "Executions."),
            _count("rows", "Rows returned or affected."),
            _ms("total_exec_ms", "Total execution time."),
            _ms("mean_exec_ms", "Mean execution time."),
            _ms("min_exec_ms", "Fastest execution."),
            _ms("max_exec_ms", "Slowest execution."),
            _ms("stddev_exec_ms", "Standard deviation of execution time."),
            _ms(
                "total_plan_ms",
                "Total planning time (0 unless `pg_stat_statements.track_planning`).",
            ),
            _count("shared_blks_hit", "Shared buffer hits."),
            _count("shared_blks_read", "Shared blocks read."),
            _count("shared_blks_dirtied", "Shared blocks dirtied."),
            _count("temp_blks_written", "Temporary blocks written."),
            _ms("blk_read_time_ms", "Time reading blocks (`track_io_timing`)."),
            _ms("blk_write_time_ms", "Time writing blocks (`track_io_timing`)."),
            Column("wal_bytes", "float", "WAL generated.", unit="bytes", non_negative=True),
        ),
    ),
    Table(
        "lock_waits",
        "Lock waits, deadlocks, serialization failures and lock timeouts reported in the "
        "servers' logs (`log_lock_waits`, `deadlock_timeout`).",
        (
            IMPL,
            _ts("ts", "Log line time."),
            SERVER,
            Column("pid", "int", "Backend process id."),
            PG_COMPONENT,
            DATABASE,
            Column("event", "str", "What the line reports.", values=LOCK_EVENTS),
            Column("lock_mode", "str", '`ShareLock`, `RowExclusiveLock`, ... (`""` if none).'),
            Column("object", "str", 'The locked object as the log names it (`""` if none).'),
            _ms("waited_ms", "How long it had waited; null when the line does not say.", True),
            Column("message", "str", "The log message."),
        ),
        rows_required=False,
        notes="No rows when nothing waited longer than `deadlock_timeout`.",
    ),
    Table(
        "lag",
        "The backlog of the read side, over time: a projection's (sampled at about 2 Hz), or a "
        "standby's (10 rows a second from the replay samples, see `replay`).",
        (
            IMPL,
            _ts("ts", "When the sample was taken."),
            Column("elapsed_s", "float", "`ts` minus the start of the load.", unit="s"),
            _count(
                "events_behind",
                "Events committed to the outbox but not yet applied; for a standby, primary "
                "commits not yet replayed.",
            ),
            _ms(
                "oldest_unapplied_age_ms",
                "Age of the oldest committed, unapplied event (unreplayed commit); null when none.",
                True,
            ),
        ),
        projection_only=True,
    ),
    Table(
        "event_lag",
        "Time lag of every source commit applied by the projector (its events may span "
        "batches: applied when the last of them was); for a standby, the replay lag of every "
        "primary commit made while it was sampled.",
        (
            IMPL,
            _ts(
                "source_commit",
                "Commit time of the source transaction on the write server "
                "(`track_commit_timestamp`).",
            ),
            _ts(
                "applied_at",
                "Commit time of the transaction that applied its last event to the read model; "
                "for a standby, the first replay sample that saw it replayed (late by at most the "
                "sampling interval, never early).",
            ),
            _ms(
                "lag_ms",
                "applied_at − source_commit. Across two servers it includes their clock "
                "difference, so it is not checked for sign.",
                non_negative=False,
            ),
        ),
        projection_only=True,
        notes="One row per source commit.",
    ),
    Table(
        "freshness",
        "Freshness seen by each dashboard query. With a projection: query start minus the "
        "commit time of the oldest committed, unapplied event (0 when none, as HATtrick defines "
        "it); reading a standby (since version 3): of the oldest primary commit not yet replayed. "
        "With a refresher (since version 3): query start minus the start of the refresh "
        "transaction that produced the data of the view the query read (the last refresh of "
        "that view committed before the query started).",
        (
            IMPL,
            OPERATION,
            _ts("started_at", "When the query started."),
            _ms("freshness_ms", "Staleness of the answer."),
        ),
        rows_required=False,
        lagging_only=True,
        notes="No rows in a run without dashboard load.",
    ),
    Table(
        "refreshes",
        "Every refresh of a materialized view by the refresher process (architectures with a "
        "refresher): `REFRESH MATERIALIZED VIEW CONCURRENTLY`, one view per transaction.",
        (
            IMPL,
            Column("view", "str", "The materialized view."),
            _ts("started_at", "Start of the refresh transaction (its data is current as of it)."),
            _ts("ended_at", "When its commit returned."),
            Column("phase", "str", "Phase of the load its start falls in.", values=PHASES),
            _ms("duration_ms", "ended_at − started_at."),
            _ms(
                "backend_cpu_ms",
                "CPU time (user + system) of the server backend that refreshed it; null when "
                "the server is not on this machine.",
                True,
            ),
        ),
        rows_required=False,
        notes="The refresher's first round (before the load) is in phase `warmup`. No rows for "
        "architectures without a refresher.",
        since=3,
    ),
    Table(
        "replay",
        "A streaming standby's replay, sampled 100 times a second (architectures that read a "
        "standby): the source of their lag, event_lag and freshness rows.",
        (
            IMPL,
            _ts("ts", "When the sample's answer arrived (the standby had replayed at least this)."),
            Column(
                "replay_lsn_bytes",
                "float",
                "`pg_last_wal_replay_lsn()` as bytes from 0/0.",
                unit="bytes",
                non_negative=True,
            ),
            _ts(
                "last_replayed_commit",
                "`pg_last_xact_replay_timestamp()`: the primary's commit time of the last "
                "transaction replayed; null before the first.",
                nullable=True,
            ),
        ),
        rows_required=False,
        projection_only=True,
        since=3,
    ),
    Table(
        "resources",
        "CPU and memory per component, sampled at about 1 Hz (psutil, children included); "
        "with run.json's `cpu_capacity`, the source of the report's bottlenecks.",
        (
            IMPL,
            _ts("ts", "When the sample was taken."),
            Column(
                "component",
                "str",
                "Which processes: "
                + ", ".join(f"`{c}`" for c in RESOURCE_COMPONENTS)
                + ", and `locust_worker_N` for each Locust worker the run started "
                "(`--locust-workers`). `service` is the `serve` process with its descendants: "
                "with `--service-workers N` > 1, the N worker processes and multiprocessing's "
                "resource tracker. `machine` (since version 5) is the whole machine, "
                "whatever runs on it (other users' processes too): busy CPU from /proc/stat "
                "(user and nice as user; system, irq, softirq and steal as system), every "
                "process on it and the memory in use; no component of the run, it is in no "
                "total of the system under test.",
            ),
            _count("processes", "Processes counted."),
            Column(
                "cpu_user_s", "float", "User CPU time, cumulative.", unit="s", non_negative=True
            ),
            Column(
                "cpu_system_s", "float", "System CPU time, cumulative.", unit="s", non_negative=True
            ),
            Column("rss_bytes", "int", "Resident memory.", unit="bytes", non_negative=True),
        ),
    ),
    Table(
        "storage",
        "What the architecture stores: sizes read once the load has stopped and the projection "
        "caught up (`pg_database_size`, `pg_total_relation_size`: tables with indexes and TOAST).",
        (
            IMPL,
            SERVER,
            Column("database", "str", "The run's database on that server."),
            Column("relation", "str", 'A table of the public schema; `""` for the whole database.'),
            Column("bytes", "int", "Size on disk.", unit="bytes", non_negative=True),
        ),
        rows_required=False,
        notes="No rows with `--no-collectors`.",
    ),
    Table(
        "verification",
        "Answers checked before measuring: each implementation gives the same answers; and, "
        "after it, the read models of each architecture that has them reconciled with its write model.",
        (
            IMPL,
            Column(
                "phase",
                "str",
                "`before`: an answer checked before measuring (a mismatch and the implementation "
                "is not measured); `after`: a read model reconciled once the load stopped and the "
                "projection caught up, one row per read-model table, every row recomputed from "
                "the write model (a mismatch marks the run, see run.json `reconciliation`; an "
                'has none). Runs of version 1 lack it (read as `""`; their checks are all '
                "before).",
                values=("before", "after"),
                since=2,
            ),
            Column("check", "str", "What was checked: a query, or (after) a read-model table."),
            Column("matched", "bool", "Whether the answer matched the expected one."),
            Column(
                "detail",
                "str",
                "What agreed (rows), or what differed: after, the rows expected and found, how "
                "many differ and the first differing key with its expected and actual values.",
            ),
        ),
    ),
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES_BY_NAME)


def tables_at(version: int) -> tuple[Table, ...]:
    """The tables a run of results schema `version` has, as it has them."""
    return tuple(t.at_version(version) for t in TABLES if t.since <= version)


def table(name: str | Table) -> Table:
    """The table called `name` (with or without `.parquet`; a Table is returned as it is);
    ValueError naming the tables."""
    if isinstance(name, Table):
        return name
    key = name.removesuffix(".parquet")
    if key not in TABLES_BY_NAME:
        raise ValueError(
            f"unknown results table {name!r}; the tables are {', '.join(TABLES_BY_NAME)}"
        )
    return TABLES_BY_NAME[key]


# Everything else a run directory holds. {impl} and {component} are placeholders.
RUN_JSON = "run.json"
SUMMARY_TXT = "summary.txt"
LOCUST_DIR = "locust"
LOGS_DIR = "logs"
RAW_DIR = "raw"
REPORT_DIR = "report"
LOCUST_FILES = (
    "{impl}_stats.csv",
    "{impl}_stats_history.csv",
    "{impl}_failures.csv",
    "{impl}_exceptions.csv",
)
OTHER_FILES = (
    (RUN_JSON, "Metadata of the run (below)."),
    (
        SUMMARY_TXT,
        "What the run printed at its end: the answer, the summary table and the "
        "article's claims with their verdicts (this round's alone).",
    ),
    *((f"{LOCUST_DIR}/{f}", "Locust's own CSV, per implementation.") for f in LOCUST_FILES),
    (
        f"{LOGS_DIR}/{{impl}}-{{component}}.log",
        "Log of each component (servers, service, "
        "projector, Locust) while it ran that implementation.",
    ),
    (
        f"{RAW_DIR}/{{impl}}/seconds-{{pid}}.jsonl",
        "What each Locust process recorded, one line per second: per operation and kind the "
        "count, the errors by type and the base64 HDR histogram (the source of latency.parquet), "
        "and per user class the users acting (since version 2; the source of users.parquet).",
    ),
    (
        f"{RAW_DIR}/{{impl}}/queries-{{pid}}.jsonl",
        "Start time (epoch s) and outcome of every dashboard query (the source of freshness).",
    ),
    (
        f"{RAW_DIR}/{{impl}}/projector-batches.jsonl",
        "CQRS: every batch the projector applied, its commit time and its events' source commit "
        "times, epoch s, one per event (the source of event_lag: consecutive events with the "
        "same time are one source commit).",
    ),
    (f"{RAW_DIR}/{{impl}}/workload.json", "The workload configuration Locust ran with."),
    (
        f"{REPORT_DIR}/report.md",
        "The report `cqrs-bench run` writes at its end (`cqrs-bench report RUN_DIR`): the "
        "answer, charts (PNG, beside it), the article's claims with their verdicts and the "
        "decision record. With `--repeat N`, the last round's report covers every round.",
    ),
    (
        f"{REPORT_DIR}/report.html",
        "The same report in one self-contained HTML file (charts embedded, nothing fetched).",
    ),
    (
        f"{REPORT_DIR}/summary.txt",
        "With `--repeat N`, in the last round only: the summary of every round together.",
    ),
)

RUN_JSON_KEYS: tuple[tuple[str, str], ...] = (
    (
        "schema_version",
        f"Version of this results format (an integer; now {RESULTS_SCHEMA_VERSION}). Runs of an "
        "older version are still valid and read: version 1 has no users.parquet, no "
        "`blocker_component` in waits.parquet and no `phase` in verification.parquet; versions "
        "1 and 2 have no refreshes.parquet (and no architecture with a refresher); versions "
        "1 to 3 have no horizon.parquet and no table_stats.parquet; versions 1 to 4 have no "
        "`machine` rows in resources.parquet and no `cpu_capacity` in run.json (their report "
        "names no bottleneck).",
    ),
    (
        "run_id",
        "The run directory's name: UTC start time `YYYYmmddTHHMMSSZ`, plus `-N` when "
        "another run started in the same second.",
    ),
    ("experiment", "The experiment's name (the parent directory)."),
    ("status", "`running` while it runs, then `complete` or `incomplete`."),
    ("started_at", "UTC start time, ISO 8601."),
    ("finished_at", "UTC end time, ISO 8601; null while running."),
    (
        "config",
        "The full configuration of the run (load shape, rates, durations, seed, CPUs, "
        "...), enough to repeat it; `preset` names the preset its options came from, `repeat` "
        "the rounds of the invocation, `round` this directory's (from 1) and `order` the order "
        "the implementations ran in (reversed every other round); `retries` the bound on a "
        "command's retries after a serialization failure or a deadlock (`run --retries`), "
        "`service_workers` the worker processes of the API service the run started (`run "
        "--service-workers`; null when it started none: inproc, or `--service-url`; absent "
        "before it existed), `mix_spec` the mix as it was read (per class: users, tasks, "
        "`isolation`, and an Analyst's `report_s`); `service_cpu_quota` the cores the service "
        "was limited to (`run --service-cpu-quota`; null: no quota); `settings` the "
        "architectures' own settings the run was given (`run --set IMPL.NAME=VALUE`: IMPL → "
        "{NAME: VALUE}; `{}` when none; the values each architecture ran with, defaults "
        "included, are in its `impls.<impl>.settings`; absent before it existed).",
    ),
    (
        "versions",
        "Python and package versions (`cqrs-bench`, SQLAlchemy, psycopg, Locust, "
        "pandas, pyarrow, hdrhistogram); null for one that is not installed.",
    ),
    (
        "postgres",
        "Per server (`write`, `read`): DSN without password, `server_version`, "
        "`server_version_num`, and `settings`: name → {value, setting, unit, source} for every "
        "setting not at its default plus a fixed list of relevant ones.",
    ),
    (
        "git",
        "`commit`, `branch` (null when detached), `dirty` (uncommitted changes to tracked "
        "files) and `dirty_files`; null when the code is not a git checkout.",
    ),
    (
        "machine",
        "hostname, platform, kernel, CPU model, logical CPUs, this process's CPU "
        "affinity, memory total, load average at start.",
    ),
    ("dataset", "Scale factor, seed, generator and schema versions, checksum of the dataset."),
    (
        "impls",
        "The implementations the run drives, in order: a list of names, or an object keyed by "
        "name holding details of each: `status`, `database` and `database_origin` (`clone`: "
        "made and dropped by the run; `given`: an existing one, `run --database`), `service` "
        "(the URL measured, http transport) and `service_origin` (`started` | `given`), "
        "`projector` (`started` | `external` (`run --service-url`: its lag per commit is not "
        "recorded, so event_lag has no rows for it) | `none`), `refresher` (architectures with a "
        "refresher: `started` | `external`, whose refreshes and freshness are not recorded), "
        "`wait_sampler` (where the command sessions' wait shares come from: `pg_wait_sampling`, "
        "the samples of wait_profile.parquet, when the write server's extension samples backends "
        "on CPU too; else `activity`, the 10 Hz samples of waits.parquet; absent with "
        "--no-collectors and before version 4), `wait_profile` (whether wait_profile.parquet "
        "was collected: `collected (extension V), with CPU samples`, `... without CPU samples "
        "...`, or `not collected: <why>`; absent with --no-collectors), "
        "`started` (the processes the run "
        "started), `verification` ({checks, mismatches} before measuring), `reconciliation` "
        "(architectures with read models: {tables, mismatches, seconds}, reconciled with the write model "
        "after the load; mismatches > 0: they drifted, the run is complete but marked so, with a "
        "warning), `warnings`; for an architecture that reads a standby: "
        "`hot_standby_feedback` (the standby's setting during the run, from `run "
        "--hot-standby-feedback`), `standby_replayed_before_verification_s`, "
        "`standby_replayed_before_load_s` and `standby_caught_up_s` (the explicit waits until "
        "the standby had replayed the primary's WAL position, before verification, before the "
        "load and after it); since version 5, `cpu_capacity` (component → {`cores`, `basis`}: "
        "the most CPU each component could use, recorded when the load starts: one core per "
        "Python process (the GIL: the service's worker processes, a Locust process, the "
        "projector, the refresher, the runner), a server's CPU affinity, a cgroup quota (the "
        "service's with `--service-cpu-quota`, a container's), never more than `machine`, the "
        "machine's logical CPUs or its quota; `basis` says which bound applied) and, with "
        "`run --service-cpu-quota`, `cpu_quota` (component → {`cores`, `quota_us`, "
        "`period_us`, `cgroup_version`, `applied`, and the cgroup's cpu.stat from when the "
        "component was ready until it stopped: `nr_periods` (quota periods in which it ran), "
        "`nr_throttled` (those it was throttled in), `throttled_s`, `throttled_share` "
        "(nr_throttled / nr_periods)}); `settings`, what the architecture ran with: the "
        "settings its architecture.toml declares, each the run's `--set` value or its default "
        "(listed in `run --help`), and an event-sourced one's "
        "`library`; absent when it has none.",
    ),
    (
        "metadata_errors",
        "Optional: dotted key → reason, for each piece of metadata that could "
        "not be gathered (that piece is null).",
    ),
    ("incomplete_reason", "When `incomplete`: why the run stopped."),
    (
        "failed_component",
        "When `incomplete`: the component that failed (null if none did, e.g. interrupted).",
    ),
    (
        "failed_log",
        "When `incomplete`: the failed component's log, relative to the run "
        "directory, or absolute (null if none).",
    ),
)
REQUIRED_RUN_JSON_KEYS = (
    "schema_version",
    "run_id",
    "experiment",
    "status",
    "started_at",
    "finished_at",
    "config",
    "versions",
    "postgres",
    "git",
    "machine",
    "dataset",
    "impls",
)
INCOMPLETE_RUN_JSON_KEYS = ("incomplete_reason", "failed_component", "failed_log")


# made by the collectors: a run with --no-collectors (config.collectors false) has no rows in them
COLLECTOR_TABLES = (
    "waits",
    "wait_profile",
    "horizon",
    "table_stats",
    "db_stats",
    "statements",
    "lock_waits",
    "lag",
    "event_lag",
    "freshness",
    "refreshes",
    "replay",
    "resources",
    "storage",
)


def _rows_text(t: Table) -> str:
    who = "every implementation"
    if t.projection_only:
        who = "architectures with a projection or a standby only"
    elif t.lagging_only:
        who = "architectures with a projection, a refresher or a standby only"
    if not t.rows_required:
        limited = t.projection_only or t.lagging_only
        return f"may be empty; {who.lower()} may have rows" if limited else "may be empty"
    unless = " (unless it ran with --no-collectors)" if t.name in COLLECTOR_TABLES else ""
    return f"required for {who} in a complete run{unless}"


BEGIN_MARKER = "<!-- BEGIN GENERATED: cqrs-bench results schema --write -->"
END_MARKER = "<!-- END GENERATED -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def describe_markdown() -> str:
    """The tables section of results/README.md, generated from TABLES (markers not included)."""
    out = [f"## Tables (results schema version {RESULTS_SCHEMA_VERSION})", ""]
    out.append(
        "Every table is one Parquet file in the run directory, written once. Timestamps are "
        "UTC with microsecond precision. A nullable float may hold NaN, which is stored as "
        "null. *Rows* says which implementations must (or may) have rows."
    )
    out.append("")
    for t in TABLES:
        out.append(f"### `{t.file_name}`")
        out.append("")
        out.append(t.description + (f" {t.notes}" if t.notes else ""))
        out.append("")
        out.append(f"Rows: {_rows_text(t)}.")
        out.append("")
        out.append("| column | type | unit | null | description |")
        out.append("| --- | --- | --- | --- | --- |")
        for c in t.columns:
            desc = c.description
            if c.values:
                desc += " One of " + ", ".join(f"`{v}`" for v in c.values) + "."
            if c.non_negative:
                desc += " ≥ 0."
            null = "yes" if c.nullable else ""
            out.append(f"| `{c.name}` | {c.kind} | {_cell(c.unit)} | {null} | {_cell(desc)} |")
        out.append("")
    out.append("### Other files")
    out.append("")
    out.append("| file | what it holds |")
    out.append("| --- | --- |")
    for name, desc in OTHER_FILES:
        out.append(f"| `{name}` | {_cell(desc)} |")
    out.append("")
    out.append("### `run.json` keys")
    out.append("")
    out.append("| key | what it holds |")
    out.append("| --- | --- |")
    for key, desc in RUN_JSON_KEYS:
        out.append(f"| `{key}` | {_cell(desc)} |")
    return "\n".join(out) + "\n"


README = Path(__file__).resolve().parents[2] / "results" / "README.md"


def with_generated_section(text: str) -> str:
    """`text` (results/README.md) with the part between the markers replaced by
    describe_markdown(); ValueError when the markers are missing."""
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin < 0 or end < begin:
        raise ValueError(f"the README lacks the markers {BEGIN_MARKER!r} ... {END_MARKER!r}")
    head = text[: begin + len(BEGIN_MARKER)]
    return f"{head}\n\n{describe_markdown()}\n{text[end:]}"
