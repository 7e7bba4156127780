"""Measurement collectors (DESIGN section 6): each produces a pandas frame for one results table.

| table | collector |
| --- | --- |
| waits | activity.ActivitySampler (thread; rounds() counts the sampling rounds) |
| horizon | horizon.HorizonSampler (thread, 2 Hz: the oldest snapshot's holder per database) |
| table_stats | table_stats.TableStatsSampler (thread, every 2 s: pg_stat_user_tables, sizes) |
| db_stats | db_stats.snapshot() before and after, db_stats.deltas() |
| statements | statements.reset() at start, statements.read() at the end |
| lock_waits | server_log.LogTail(path).start(), .read() at the end |
| resources | resources.ResourceSampler (thread; add_machine: the whole machine's busy CPU) |
| lag | lag.LagSampler (thread) |
| event_lag | lag.event_lag(lag.read_batches(path)) |
| freshness | lag.freshness(event_lag frame, queries frame) |

run.json's `cpu_capacity` (the most CPU each component could use) comes from capacity.capacities().

Timestamps are timezone-aware UTC; a sampler thread's failure is raised by its stop() as a
CollectorError naming the collector (with what it collected before, in `.frame`).
"""

from harness.collectors.activity import ActivitySampler
from harness.collectors.base import CollectorError
from harness.collectors.lag import LagSampler, event_lag, freshness, read_batches
from harness.collectors.resources import ResourceSampler
from harness.collectors.server_log import LogTail, log_path, log_path_for

__all__ = [
    "ActivitySampler",
    "CollectorError",
    "LagSampler",
    "LogTail",
    "ResourceSampler",
    "log_path",
    "event_lag",
    "freshness",
    "log_path_for",
    "read_batches",
]
