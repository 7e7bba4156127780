"""Live progress from the files the Locust processes write each second (workloads.recorder)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from hdrh.histogram import HdrHistogram


class SecondsTail:
    """Follows every `seconds-<pid>.jsonl` in a directory as the Locust processes append to it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}
        self.start: float | None = None  # the first second with a request
        self.latest: dict[int, dict] = {}  # second -> {"requests": n, "checkout": [hdr...]}

    def poll(self) -> None:
        for path in sorted(self.directory.glob("seconds-*.jsonl")):
            with path.open("rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
            self.offsets[path] = self.offsets.get(path, 0) + len(complete)
            for line in complete.splitlines():
                self._add(json.loads(line))

    def _add(self, record: dict) -> None:
        second = int(record["second"])
        requests = sum(
            op["count"] + sum(op["errors"].values())
            for op in record["ops"]
            if op["kind"] == "service"
        )
        if requests and (self.start is None or second < self.start):
            self.start = second
        entry = self.latest.setdefault(second, {"requests": 0, "checkout": []})
        entry["requests"] += requests
        entry["checkout"] += [
            op["hdr"]
            for op in record["ops"]
            if op["operation"] == "checkout" and op["kind"] == "service" and op["count"]
        ]
        for old in sorted(self.latest)[:-10]:
            del self.latest[old]

    def first_second(self) -> float | None:
        self.poll()
        return self.start

    def line(self, impl: str, warmup: float, duration: float, lag) -> str:
        """One progress line: phase, elapsed, requests/s and checkout p99 over the last seconds,
        and the projection's lag."""
        seconds = sorted(self.latest)[-5:]
        requests = sum(self.latest[s]["requests"] for s in seconds) / max(len(seconds), 1)
        hist = None
        for s in seconds:
            for encoded in self.latest[s]["checkout"]:
                h = HdrHistogram.decode(encoded)
                hist = h if hist is None else (hist.add(h) or hist)
        elapsed = (seconds[-1] + 1 - self.start) if seconds else 0
        phase = "warm-up" if elapsed < warmup else "measure"
        shown = elapsed if elapsed < warmup else elapsed - warmup
        total = warmup if elapsed < warmup else duration
        p99 = f"{hist.get_value_at_percentile(99) / 1000:7.1f} ms" if hist else "      - ms"
        text = (
            f"   {impl:14} {phase:8} {shown:4.0f}/{total:.0f}s  {requests:7.0f} req/s  "
            f"checkout p99 {p99}"
        )
        if lag is not None:
            text += f"  lag {lag}"
        return text

    def queries(self) -> pd.DataFrame:
        """Every successful dashboard query's start (for freshness): operation, started_at."""
        rows = []
        for path in sorted(self.directory.glob("queries-*.jsonl")):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record.get("ok"):
                    rows.append((record["operation"], record["started_at"]))
        frame = pd.DataFrame(rows, columns=["operation", "started_at"])
        frame["started_at"] = pd.to_datetime(frame["started_at"], unit="s", utc=True)
        return frame
