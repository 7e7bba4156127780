"""The answer and the claims: architectures identical by construction are within noise, a clear
difference is reported with an interval that excludes zero, and every claim is always present.

The runs are copies of the committed sample run (real per-second histograms) given a `users`
table that steps the analysts 0, 4, 8, 16 over the measured seconds, as the default run does."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import answer, claims
from harness.analysis.load import Loaded, Run
from harness.results import read_run_json
from implementations import registry
from tests.test_report import SAMPLE, _slowed

LEVELS = (0, 4, 8, 16)


def _rewrite(path: Path, frame: pd.DataFrame) -> None:
    path.unlink(missing_ok=True)
    frame.to_parquet(path)


def _copy(tmp_path: Path, name: str) -> Path:
    """The sample run with a users table: analysts LEVELS[i] in the i-th quarter of the
    measured seconds of each architecture (Shoppers 6 throughout)."""
    copy = tmp_path / "sample" / name
    shutil.copytree(SAMPLE, copy)
    latency = pd.read_parquet(copy / "latency.parquet")
    rows = []
    for impl, part in latency.groupby("impl"):
        seconds = part[["second", "elapsed_s", "phase"]].drop_duplicates("second")
        measured = sorted(seconds.loc[seconds["phase"] == "measure", "second"])
        for row in seconds.itertuples():
            level = 0
            if row.phase == "measure":
                level = LEVELS[min(measured.index(row.second) * 4 // len(measured), 3)]
            for user_class, users in (("Shopper", 6), ("Analyst", level)):
                rows.append(
                    {
                        "impl": impl,
                        "second": row.second,
                        "elapsed_s": row.elapsed_s,
                        "phase": row.phase,
                        "user_class": user_class,
                        "users": users,
                    }
                )
    _rewrite(copy / "users.parquet", pd.DataFrame(rows))
    meta = json.loads((copy / "run.json").read_text())
    meta["schema_version"] = 2
    (copy / "run.json").write_text(json.dumps(meta))
    return copy


def _set_impl_latency(copy: Path, impl: str, rows: pd.DataFrame, source: str) -> None:
    """`impl`'s latency rows replaced by `rows` (those of `source`, perhaps changed), and its
    users rows by `source`'s, relabelled."""
    for table, new in (("latency", rows), ("users", None)):
        frame = pd.read_parquet(copy / f"{table}.parquet")
        new = frame[frame["impl"] == source] if new is None else new
        frame = pd.concat([frame[frame["impl"] != impl], new.assign(impl=impl)], ignore_index=True)
        _rewrite(copy / f"{table}.parquet", frame)


def _slow_crud_at_the_top(copy: Path) -> pd.DataFrame:
    """crud's checkout histograms made 10 times slower in the seconds with the most analysts;
    crud's latency rows as they now are."""
    latency = pd.read_parquet(copy / "latency.parquet")
    users = pd.read_parquet(copy / "users.parquet")
    top = users[(users["user_class"] == "Analyst") & (users["users"] == LEVELS[-1])]
    crud = latency[latency["impl"] == "crud"].copy()
    slow = crud["operation"].eq("checkout") & crud["second"].isin(
        top[top["impl"] == "crud"]["second"]
    )
    crud.loc[slow, "hdr"] = crud.loc[slow, "hdr"].map(lambda b: _slowed(b, 10))
    _set_impl_latency(copy, "crud", crud, "crud")
    return crud


def _loaded(path: Path) -> Loaded:
    return Loaded([Run(path.resolve(), read_run_json(path))])


def test_the_same_architecture_under_two_labels_is_within_noise_everywhere(tmp_path) -> None:
    copy = _copy(tmp_path, "twins")
    latency = pd.read_parquet(copy / "latency.parquet")
    _set_impl_latency(copy, "cqrs-logical", latency[latency["impl"] == "crud"], "crud")
    data = _loaded(copy)
    found = answer.answer(data)
    twin = found.versus["cqrs-logical"]
    assert twin.value == 0 and twin.low <= 0 <= twin.high and not twin.beyond_noise
    assert not found.at_baseline["cqrs-logical"].beyond_noise
    assert "cqrs-logical's" in found.text and "within noise of crud's" in found.text
    sentence = re.search(r"cqrs-logical's [^;]*", found.text).group(0)
    assert "lower" not in sentence and "higher" not in sentence
    verdicts = {c.short: c for c in claims.claims(data)}
    fast = verdicts["read models make dashboards fast"]
    assert "cqrs-logical" in fast.figures and fast.verdict != claims.HOLDS
    assert re.search(r"cqrs-logical [\d.]+ ms, within noise of crud", fast.figures)


def test_a_clear_difference_is_reported_with_an_interval_that_excludes_zero(tmp_path) -> None:
    copy = _copy(tmp_path, "slow-crud")
    _slow_crud_at_the_top(copy)
    data = _loaded(copy)
    found = answer.answer(data)
    assert found.onset is not None and found.onset.analysts == LEVELS[-1]
    assert found.rise.low > 0
    for impl in ("cqrs-logical", "cqrs-physical"):
        change = found.versus[impl]
        assert change.high < 0, change
        assert f"{abs(change.value):.1f} ms lower than crud's (95% interval" in found.text
    assert f"left that baseline from {LEVELS[-1]} analysts" in found.text
    verdicts = {c.short: c.verdict for c in claims.claims(data)}
    assert verdicts["dashboards slow checkout down"] == claims.HOLDS


def test_every_claim_is_present_with_a_verdict(tmp_path) -> None:
    listed = claims.claims(_loaded(_copy(tmp_path, "claims")))
    assert [c.short for c in listed] == [
        "dashboards lock rows checkout needs",
        "dashboards slow checkout down",
        "read models make dashboards fast",
        "async updates keep checkout fast",
        "the read model is only slightly behind",
        "start with logical separation",
        "synchronous updates lose the benefit",
    ]
    for claim in listed:
        assert claim.verdict in (claims.HOLDS, claims.FAILS, claims.NOT_SHOWN, claims.UNTESTED)
        assert claim.figures
    assert {c.short: c.verdict for c in listed}[
        "synchronous updates lose the benefit"
    ] == claims.UNTESTED
    text = claims.markdown(listed)
    assert all(c.quote in text for c in listed)


@pytest.mark.parametrize("within", [True, False])
def test_the_difference_is_called_a_gain_or_loss_only_beyond_noise(within: bool) -> None:
    change = answer.Difference(30.0, 27.0, -5.0 if within else -4.0, 2.0 if within else -1.0)
    text = change.relative("crud's")
    assert ("within noise" in text) == within
    assert ("lower" in text) != within


SYNCHRONOUS = next(
    a.name for a in registry.architectures().values() if a.read_model == "synchronous"
)


@pytest.mark.parametrize(
    "like, verdict",
    [("crud", claims.HOLDS), ("cqrs-logical", claims.FAILS)],
    ids=["as-slow-as-crud-loses-the-benefit", "as-fast-as-async-keeps-it"],
)
def test_the_synchronous_claim_compares_it_with_the_baseline_and_an_asynchronous_read_model(
    tmp_path, like: str, verdict: str
) -> None:
    """crud's checkout made 10 times slower at the most analysts (so the asynchronous read model
    buys a clear benefit there); the synchronous architecture given the histograms of crud (the
    benefit lost) or of cqrs-logical (kept)."""
    copy = _copy(tmp_path, f"sync-like-{like}")
    latency = pd.read_parquet(copy / "latency.parquet")
    crud = _slow_crud_at_the_top(copy)
    source = crud if like == "crud" else latency[latency["impl"] == like]
    _set_impl_latency(copy, SYNCHRONOUS, source.assign(impl=like), like)
    meta = json.loads((copy / "run.json").read_text())
    meta["impls"][SYNCHRONOUS] = meta["impls"][like]
    (copy / "run.json").write_text(json.dumps(meta))

    claim = {c.short: c for c in claims.claims(_loaded(copy))}[
        "synchronous updates lose the benefit"
    ]
    assert claim.verdict == verdict, claim.figures
    assert f"{SYNCHRONOUS} " in claim.figures and "cqrs-logical " in claim.figures
    assert ("most of it was lost" in claim.figures) == (verdict == claims.HOLDS)


WRITE_TABLES = next(
    a.name
    for a in registry.architectures().values()
    if a.read_model == "write tables" and a.name != registry.baseline()
)


def test_claims_about_read_models_leave_out_architectures_without_one(tmp_path) -> None:
    """An architecture whose queries read the write tables (a standby's, or views over them) is
    given crud's histograms: the claims about read models neither name it nor change verdict."""
    alone = {c.short: c for c in claims.claims(_loaded(_copy(tmp_path, "alone")))}
    copy = _copy(tmp_path, "beside")
    latency = pd.read_parquet(copy / "latency.parquet")
    _set_impl_latency(copy, WRITE_TABLES, latency[latency["impl"] == "crud"], "crud")
    meta = json.loads((copy / "run.json").read_text())
    meta["impls"][WRITE_TABLES] = meta["impls"]["crud"]
    (copy / "run.json").write_text(json.dumps(meta))
    beside = {c.short: c for c in claims.claims(_loaded(copy))}
    for short in (
        "read models make dashboards fast",
        "async updates keep checkout fast",
        "the read model is only slightly behind",
    ):
        assert WRITE_TABLES not in beside[short].figures, beside[short].figures
        assert beside[short].verdict == alone[short].verdict, short
        assert "cqrs-logical" in beside[short].figures


@pytest.mark.parametrize("rising", [True, False], ids=["dashboards-abort-checkouts", "flat"])
def test_the_locks_claim_names_serialization_failures_that_rise_with_the_dashboards(
    tmp_path, rising: bool
) -> None:
    """The sample at SERIALIZABLE: crud's checkouts retried once in every 20th second with no
    analysts, and (rising) in every second at the most analysts, while cqrs-logical's stay at
    the no-analyst rate. The claim holds, naming the mechanism, only when crud's rate rises
    beyond noise; cqrs-logical's is within noise either way."""
    copy = _copy(tmp_path, f"serializable-{rising}")
    latency = pd.read_parquet(copy / "latency.parquet")
    users = pd.read_parquet(copy / "users.parquet")
    analysts = users[users["user_class"] == "Analyst"][["impl", "second", "users"]]
    rows = latency.merge(analysts, on=["impl", "second"], how="left")
    checkout = rows["operation"].eq("checkout") & rows["count"].gt(0)
    busy = rows["users"].eq(LEVELS[-1]) & rows["impl"].eq("crud") & rising
    every_20th = rows["second"].map(lambda s: s.second % 20 == 0)
    latency["retries"] = ((checkout & (busy | every_20th)) * rows["count"].clip(upper=1)).astype(
        "int64"
    )
    _rewrite(copy / "latency.parquet", latency)
    meta = json.loads((copy / "run.json").read_text())
    meta["config"]["mix_spec"] = {
        "classes": {c: {"isolation": "serializable"} for c in ("Shopper", "Analyst")}
    }
    (copy / "run.json").write_text(json.dumps(meta))

    claim = {c.short: c for c in claims.claims(_loaded(copy))}[
        "dashboards lock rows checkout needs"
    ]
    assert "checkout at SERIALIZABLE" in claim.figures
    assert re.search(r"cqrs-logical [^;]*: within noise", claim.figures), claim.figures
    assert claim.verdict == (claims.HOLDS if rising else claims.FAILS), claim.figures
    assert ("mechanism: serialization failures" in claim.figures) == rising
