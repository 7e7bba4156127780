"""What every collector shares: typed frames, and a sampler thread that stops promptly and never
fails silently."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from implementations.db import APP_PREFIX

COLLECTOR_APP = f"{APP_PREFIX}collector"
# Every timestamp column of every collector frame.
TS = "datetime64[us, UTC]"


def component_of(application_name: str | None) -> str:
    """The component an application_name names: the part after "cqrs-bench:" ("" if none)."""
    return (application_name or "").removeprefix(APP_PREFIX)


def utc(values: Any) -> pd.Series:
    """Timestamps (datetimes, strings or pandas values) as a timezone-aware UTC series."""
    return pd.Series(pd.to_datetime(values, utc=True)).astype(TS)


def epoch_utc(seconds: Any) -> pd.Series:
    """Epoch seconds (floats, NaN for none) as a timezone-aware UTC series."""
    return pd.Series(
        pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True)
    ).astype(TS)


def typed_frame(
    rows: Iterable[Mapping[str, Any]] | pd.DataFrame, schema: dict[str, str]
) -> pd.DataFrame:
    """`rows` as a frame with exactly the columns of `schema`, in its order and with its dtypes.

    dtypes: TS for timestamps, "int64", "Int64" (nullable), "float64", "str".
    """
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    out = {}
    for column, dtype in schema.items():
        values = df[column] if column in df else pd.Series([None] * len(df), dtype="object")
        values = values.reset_index(drop=True)
        if dtype == TS:
            out[column] = utc(values) if len(values) else pd.Series([], dtype=TS)
        elif dtype == "str":
            out[column] = (
                values.fillna("").astype("str") if len(values) else pd.Series([], dtype="str")
            )
        elif dtype == "float64":
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[column] = values.astype(dtype)
    return pd.DataFrame(out, columns=list(schema))


class CollectorError(RuntimeError):
    """A collector failed. `component` names it; `frame` holds what it collected before."""

    def __init__(self, component: str, message: str, frame: pd.DataFrame | None = None) -> None:
        super().__init__(f"collector {component!r}: {message}")
        self.component = component
        self.frame = frame


class Sampler:
    """A daemon thread calling `_sample()` every `interval` seconds (first call at once).

    Subclasses implement `_open()` (called in start(), so a bad DSN fails at once and in the
    caller), `_sample()`, `_close()` (called in the thread when it ends) and `frame()`.
    The schedule is fixed-rate: a round that overruns skips the slots it missed instead of
    bunching up. An exception in the thread ends it and is raised by stop() as a CollectorError.
    """

    name = "sampler"
    join_timeout = 10.0

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the sampling interval must be positive")
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # -- for subclasses ---------------------------------------------------------------------

    def _open(self) -> None:
        pass

    def _sample(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def frame(self) -> pd.DataFrame:
        raise NotImplementedError

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> Sampler:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} sampler already started")
        self._open()
        self._thread = threading.Thread(
            target=self._run, name=f"collector-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            due = time.monotonic()
            while not self._stopping.is_set():
                self._sample()
                due += self.interval
                now = time.monotonic()
                if due < now:  # overran: skip the missed slots
                    due += ((now - due) // self.interval + 1) * self.interval
                if self._stopping.wait(due - now):
                    break
        except BaseException as e:  # reported by stop(), never lost
            self._error = e
        finally:
            try:
                self._close()
            except Exception as e:
                self._error = self._error or e

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the thread early, if any (also raised by stop())."""
        return self._error

    def stop(self) -> pd.DataFrame:
        """Stop the thread (promptly), close its connections, and return what it collected.

        Raises CollectorError (with the partial frame) if the thread failed or did not stop.
        """
        if self._thread is None:
            raise RuntimeError(f"{self.name} sampler was not started")
        self._stopping.set()
        self._thread.join(self.join_timeout)
        if self._thread.is_alive():
            raise CollectorError(
                self.name, f"did not stop within {self.join_timeout:.0f} s", self.frame()
            )
        if self._error is not None:
            raise CollectorError(
                self.name, f"{type(self._error).__name__}: {self._error}", self.frame()
            ) from self._error
        return self.frame()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, exc_type, *_exc) -> None:
        if self._thread is not None and not self._stopping.is_set():
            if exc_type is None:
                self.stop()
            else:  # do not hide the exception that ended the block
                self._stopping.set()
                self._thread.join(self.join_timeout)
