"""Mixes and shapes: the workload as data (TOML files in workloads/mixes and workloads/shapes).

A mix says, per user class, how many users run in closed loop and how long they think between
requests, the open-loop arrival rate, and the weights of the operations that class performs. A
shape says how the number of users of each class changes over the measured part of a run, in
stages whose ends are fractions of the measured duration, so one shape fits any duration and every
stage is measured. The warm-up before it runs, in its first half, at least one user of every class
the shape ever runs, so caches are warm for each kind of request (a class first running at a later
stage would otherwise arrive cold), and in its second half the first stage alone, so that its
requests are done and the system settled when measuring starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from implementations.interface import ISOLATION_LEVELS

HERE = Path(__file__).resolve().parent
MIXES_DIR = HERE / "mixes"
SHAPES_DIR = HERE / "shapes"

USER_CLASSES = ("Shopper", "Analyst", "Merchandiser", "Prober")
# each dashboard operation and the query-side method it calls (implementations.interface)
DASHBOARD_QUERIES = {
    "dashboard_sales_by_category": "sales_by_category",
    "dashboard_top_products": "top_products",
    "dashboard_revenue": "revenue_over_time",
}
DASHBOARD_OPERATIONS = tuple(DASHBOARD_QUERIES)
OPERATIONS = (
    "checkout",
    "view_order",
    "customer_orders",
    "search",
    *DASHBOARD_OPERATIONS,
    "change_price",
    "restock",
    "discontinue",
    "ryw_visibility",
    "health",  # GET /health (inproc: an empty call): the harness's own ceiling, no database work
)
DEFAULT_WINDOWS_S = (900, 3_600, 86_400, 604_800)  # 15 min, 1 h, 24 h, 7 days
MAX_WINDOW_S = 366 * 86_400


@dataclass(frozen=True)
class UserClassSpec:
    name: str
    count: int  # closed-loop users
    think_min_s: float
    think_max_s: float
    rate: float  # open-loop arrivals per second (a share when the run sets a total rate)
    tasks: tuple[tuple[str, float], ...]  # (operation, weight), weights > 0
    windows_s: tuple[int, ...]  # dashboard windows ending now, in seconds
    isolation: str = "read committed"  # the transaction isolation of the class's operations
    # Analyst only: > 0, its queries run in reports, each one transaction held this long
    report_s: float = 0.0


@dataclass(frozen=True)
class Mix:
    name: str
    path: Path
    description: str
    classes: dict[str, UserClassSpec]  # only the classes the file names

    def count(self, user_class: str) -> int:
        spec = self.classes.get(user_class)
        return spec.count if spec else 0

    def rate(self, user_class: str) -> float:
        spec = self.classes.get(user_class)
        return spec.rate if spec else 0.0

    def reporting(self) -> list[str]:
        """The classes whose queries run in reports (report_s)."""
        return [name for name, spec in self.classes.items() if spec.report_s]

    def check_open_loop(self) -> None:
        """ValueError when a class runs reports: an open-loop class's requests run concurrently,
        and one report's transaction serves one request at a time."""
        if reporting := self.reporting():
            raise ValueError(
                f"mix {self.name}: {', '.join(reporting)} run reports (report_s), which need "
                "closed loop: drop --arrival-rate"
            )

    def as_dict(self) -> dict[str, Any]:
        """The mix as it was read, for run.json (its classes' settings, isolation included)."""
        return {
            "name": self.name,
            "description": self.description,
            "classes": {name: asdict(spec) for name, spec in self.classes.items()},
        }


@dataclass(frozen=True)
class Stage:
    until: float  # fraction of the measured duration at which this stage ends
    users: dict[str, int]  # absolute user counts for these classes
    factor: dict[str, float]  # multipliers of the mix's counts for these classes


@dataclass(frozen=True)
class Shape:
    name: str
    path: Path
    description: str
    stages: tuple[Stage, ...]

    def stage_at(self, elapsed_s: float, duration_s: float) -> Stage:
        """The stage `elapsed_s` into the measured window (negative: the warm-up's, the first)."""
        fraction = elapsed_s / duration_s if duration_s > 0 else 1.0
        return next((s for s in self.stages if fraction < s.until), self.stages[-1])

    def target(
        self, mix: Mix, user_class: str, elapsed_s: float, duration_s: float, warmup_s: float = 0.0
    ) -> int:
        """How many users of `user_class` should be active `elapsed_s` into the measured window
        of `duration_s` seconds; negative `elapsed_s` is the warm-up of `warmup_s` seconds,
        whose first half runs every class the shape ever runs (at least one user each) and whose
        second half the first stage alone, so that the measured window starts settled."""
        count = _stage_count(self.stage_at(elapsed_s, duration_s), mix, user_class)
        if elapsed_s < -warmup_s / 2:
            return max(count, min(1, self.peak(mix, user_class)))
        return count

    def peak(self, mix: Mix, user_class: str) -> int:
        """The most users of `user_class` this shape ever wants: how many to spawn."""
        return max(_stage_count(stage, mix, user_class) for stage in self.stages)

    def rate_factor(
        self, mix: Mix, user_class: str, elapsed_s: float, duration_s: float, warmup_s: float = 0.0
    ) -> float:
        """Open loop: the class's arrival rate is its mix rate times this.

        target / mix count; for a class with no closed-loop users in the mix, 1 unless this
        stage sets its users to 0.
        """
        stage = self.stage_at(elapsed_s, duration_s)
        base = mix.count(user_class)
        if base:
            return self.target(mix, user_class, elapsed_s, duration_s, warmup_s) / base
        if elapsed_s < -warmup_s / 2:  # the warm-up's first half runs every class
            return 1.0
        return 0.0 if stage.users.get(user_class, 1) == 0 else 1.0


def _stage_count(stage: Stage, mix: Mix, user_class: str) -> int:
    if user_class in stage.users:
        return stage.users[user_class]
    return round(mix.count(user_class) * stage.factor.get(user_class, 1.0))


# --- loading -------------------------------------------------------------------------------------


def mix_names() -> list[str]:
    return sorted(p.stem for p in MIXES_DIR.glob("*.toml"))


def shape_names() -> list[str]:
    return sorted(p.stem for p in SHAPES_DIR.glob("*.toml"))


def _locate(name_or_path: str, folder: Path, kind: str, names: list[str]) -> Path:
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"{kind} file {name_or_path} does not exist")
        return path
    if name_or_path not in names:
        raise ValueError(f"unknown {kind} {name_or_path!r}; choose from {', '.join(names)}")
    return folder / f"{name_or_path}.toml"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc


class _Checker:
    """Reads fields of one file; every problem is a ValueError naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f"{self.path}: {field}: {problem}")

    def keys(
        self, table: Any, field: str, allowed: tuple[str, ...], noun: str = "field"
    ) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(field, "must be a table")
        for key in table:
            if key not in allowed:
                raise self.fail(
                    f"{field}.{key}" if field else key,
                    f"unknown {noun} {key!r}; choose from {', '.join(allowed)}",
                )
        return table

    def number(self, value: Any, field: str, *, integer: bool = False, positive=False) -> float:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise self.fail(
                field, f"must be {'an integer' if integer else 'a number'}, not {value!r}"
            )
        if value < 0 or (positive and value == 0):
            raise self.fail(field, f"must be {'> 0' if positive else '>= 0'}, not {value!r}")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"must be a string, not {value!r}")
        return value


CLASS_FIELDS = (
    "users",
    "think_min_s",
    "think_max_s",
    "rate",
    "tasks",
    "windows_s",
    "isolation",
    "report_s",
)
REPORTING_CLASS = "Analyst"  # the one class whose queries may run in reports


def load_mix(name_or_path: str) -> Mix:
    """A mix by name (`mixed`) or by path (`my/mix.toml`); ValueError naming file and field."""
    path = _locate(name_or_path, MIXES_DIR, "mix", mix_names())
    check = _Checker(path)
    data = check.keys(_read(path), "", ("description", "classes"))
    classes_table = check.keys(data.get("classes", {}), "classes", USER_CLASSES, "user class")
    if not classes_table:
        raise check.fail("classes", "a mix needs at least one user class")
    classes = {name: _user_class(check, name, table) for name, table in classes_table.items()}
    if not any(c.count or c.rate for c in classes.values()):
        raise check.fail("classes", "every class has 0 users and rate 0: nothing would run")
    return Mix(path.stem, path, check.text(data.get("description", ""), "description"), classes)


def _user_class(check: _Checker, name: str, table: Any) -> UserClassSpec:
    at = f"classes.{name}"
    table = check.keys(table, at, CLASS_FIELDS)
    count = int(check.number(table.get("users", 0), f"{at}.users", integer=True))
    think_min = float(check.number(table.get("think_min_s", 0.0), f"{at}.think_min_s"))
    think_max = float(check.number(table.get("think_max_s", think_min), f"{at}.think_max_s"))
    if think_max < think_min:
        raise check.fail(f"{at}.think_max_s", f"must be >= think_min_s ({think_min})")
    rate = float(check.number(table.get("rate", 0.0), f"{at}.rate"))
    tasks_table = check.keys(table.get("tasks", {}), f"{at}.tasks", OPERATIONS, "operation")
    tasks = tuple(
        (op, float(check.number(w, f"{at}.tasks.{op}", positive=True)))
        for op, w in tasks_table.items()
    )
    if not tasks:
        raise check.fail(f"{at}.tasks", "a class needs at least one operation with a weight > 0")
    windows = table.get("windows_s", list(DEFAULT_WINDOWS_S))
    if not isinstance(windows, list) or not windows:
        raise check.fail(f"{at}.windows_s", "must be a non-empty list of seconds")
    for i, w in enumerate(windows):
        check.number(w, f"{at}.windows_s[{i}]", integer=True, positive=True)
        if w > MAX_WINDOW_S:
            raise check.fail(f"{at}.windows_s[{i}]", f"at most {MAX_WINDOW_S} (366 days)")
    isolation = check.text(table.get("isolation", ISOLATION_LEVELS[0]), f"{at}.isolation")
    if isolation not in ISOLATION_LEVELS:
        raise check.fail(
            f"{at}.isolation",
            f"unknown level {isolation!r}; choose from {', '.join(map(repr, ISOLATION_LEVELS))}",
        )
    report_s = float(check.number(table.get("report_s", 0.0), f"{at}.report_s"))
    if report_s and name != REPORTING_CLASS:
        raise check.fail(f"{at}.report_s", f"only the {REPORTING_CLASS} class runs reports")
    return UserClassSpec(
        name, count, think_min, think_max, rate, tasks, tuple(windows), isolation, report_s
    )


def load_shape(name_or_path: str) -> Shape:
    """A shape by name (`steady`) or by path; ValueError naming file and field."""
    path = _locate(name_or_path, SHAPES_DIR, "shape", shape_names())
    check = _Checker(path)
    data = check.keys(_read(path), "", ("description", "stages"))
    raw = data.get("stages", [{"until": 1.0}])
    if not isinstance(raw, list) or not raw:
        raise check.fail("stages", "must be a non-empty array of tables ([[stages]])")
    stages, previous = [], 0.0
    for i, table in enumerate(raw):
        at = f"stages[{i}]"
        table = check.keys(table, at, ("until", "users", "factor"))
        if "until" not in table:
            raise check.fail(f"{at}.until", "missing (the fraction of the duration it ends at)")
        until = float(check.number(table["until"], f"{at}.until", positive=True))
        if not previous < until <= 1.0:
            raise check.fail(f"{at}.until", f"must be > {previous} (the stage before) and <= 1")
        users = {
            k: int(check.number(v, f"{at}.users.{k}", integer=True))
            for k, v in check.keys(
                table.get("users", {}), f"{at}.users", USER_CLASSES, "user class"
            ).items()
        }
        factor = {
            k: float(check.number(v, f"{at}.factor.{k}"))
            for k, v in check.keys(
                table.get("factor", {}), f"{at}.factor", USER_CLASSES, "user class"
            ).items()
        }
        if both := set(users) & set(factor):
            raise check.fail(at, f"{', '.join(sorted(both))} given both users and factor")
        stages.append(Stage(until, users, factor))
        previous = until
    if previous != 1.0:
        raise check.fail(f"stages[{len(raw) - 1}].until", "the last stage must end at 1.0")
    return Shape(
        path.stem, path, check.text(data.get("description", ""), "description"), tuple(stages)
    )
