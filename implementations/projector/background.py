"""Running a projector on a thread of this process (tests, benchmarks, in-process runs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from implementations.projector.engine import Projector


class ProjectorThread:
    def __init__(self, projector: Projector) -> None:
        self.projector = projector
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="projector", daemon=True)

    def _run(self) -> None:
        try:
            self.projector.run(self.stop)  # opens (and reopens after an outage) its connections
        except BaseException as exc:  # noqa: BLE001 - reported by the owner on join
            self.error = exc
        finally:
            self.projector.close()

    def start(self) -> ProjectorThread:
        self.thread.start()
        return self

    def join(self, timeout: float = 30) -> None:
        self.stop.set()
        self.thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"the projector failed: {self.error!r}") from self.error


@contextmanager
def projector_thread(write_dsn: str, read_dsn: str, **options) -> Iterator[ProjectorThread]:
    running = ProjectorThread(Projector(write_dsn, read_dsn, **options)).start()
    try:
        yield running
    finally:
        running.join()
