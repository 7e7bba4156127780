"""One run's workload settings, as the harness writes them for `locust --cqrs-config PATH`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from implementations import registry

TRANSPORTS = ("http", "inproc")


@dataclass(frozen=True)
class WorkloadConfig:
    transport: str = "http"  # "http": drive the API at `host`; "inproc": call `impl` directly
    host: str | None = None  # http: the service's base URL (Locust's --host when absent)
    impl: str = field(default_factory=registry.baseline)  # inproc: what to create in Locust
    write_dsn: str | None = None  # inproc
    read_dsn: str | None = None  # inproc; the write DSN when absent
    pool_size: int = 16  # inproc: connections per engine of the implementation
    retries: int = 5  # inproc: how often a command is retried (serialization failure, deadlock)
    settings: dict[str, int] = field(default_factory=dict)  # inproc: the architecture's own
    mix: str = "mixed"  # a mix name or a path to a .toml file
    shape: str = "steady"  # a shape name or a path to a .toml file
    seed: int = 42
    duration_s: float = 60.0  # the measured part: shapes' stage ends are fractions of it
    warmup_s: float = 0.0  # before it: every class, then the first stage alone (workloads/spec.py)
    arrival_rate: float | None = None  # total arrivals per second: open loop; None: closed loop
    max_in_flight: int = 256  # open loop: arrivals beyond this wait (their intended latency grows)
    catalog: dict | None = field(default=None, repr=False)  # a Catalog.to_dict(), inline
    catalog_dsn: str | None = None  # else read the catalog from this write-model database
    out_dir: str = "locust-out"

    def __post_init__(self) -> None:
        def bad(name: str, problem: str) -> ValueError:
            return ValueError(f"workload config: {name}: {problem}")

        if self.transport not in TRANSPORTS:
            raise bad(
                "transport", f"must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}"
            )
        if self.transport == "inproc" and not self.write_dsn:
            raise bad("write_dsn", "the inproc transport needs the implementation's database")
        for name, least in (("seed", 0), ("pool_size", 1), ("retries", 0), ("max_in_flight", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise bad(name, f"must be an integer >= {least}, not {value!r}")
        if (
            isinstance(self.duration_s, bool)
            or not isinstance(self.duration_s, int | float)
            or self.duration_s <= 0
        ):
            raise bad("duration_s", f"must be a number > 0, not {self.duration_s!r}")
        if (
            isinstance(self.warmup_s, bool)
            or not isinstance(self.warmup_s, int | float)
            or self.warmup_s < 0
        ):
            raise bad("warmup_s", f"must be a number >= 0, not {self.warmup_s!r}")
        if self.arrival_rate is not None and (
            isinstance(self.arrival_rate, bool)
            or not isinstance(self.arrival_rate, int | float)
            or self.arrival_rate <= 0
        ):
            raise bad("arrival_rate", f"must be a number > 0 or null, not {self.arrival_rate!r}")
        if self.catalog is None and not self.catalog_dsn and self.transport == "http":
            raise bad("catalog", "give catalog (inline) or catalog_dsn (a write-model database)")

    @property
    def catalog_source(self) -> str | None:
        """The DSN to read the catalog from when none is inline (inproc: the write database)."""
        return self.catalog_dsn or (self.write_dsn if self.catalog is None else None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> WorkloadConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("workload config: must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(
                f"workload config: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> WorkloadConfig:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"workload config {path}: {exc.strerror}") from exc
        return cls.from_json(text)
