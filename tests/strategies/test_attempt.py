"""One attempt at a queued backtest, over a real SQLite store: claiming, fencing, what is stored
and announced, and the order of two versions of a record."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from db.backtest_store import BacktestRecord
from db.sqlite import SqliteStore
from strategies.attempt import give_up, note_failure, run_attempt
from strategies.jobs import Job, newer
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec
from tests.walks import MINUTE, T0, minute_walk

BARS = 2_000
SPEC = BacktestSpec(exchange="sim", symbol="BTC-USDT", timeframe="1m", strategy="ema_cross",
                    params={"fast": 5, "slow": 20})
JOB = Job(id="run-1", spec=SPEC, start_ns=T0, end_ns=T0 + BARS * MINUTE)
QUEUED = BacktestRecord(
    id="run-1", status="QUEUED", strategy="ema_cross", exchange="sim", symbol="BTC-USDT",
    timeframe="1m", start_ns=T0, end_ns=T0 + BARS * MINUTE, created_ns=T0,
    spec_json=msgspec.json.encode(SPEC).decode(),
)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "store.sqlite")
    store.upsert_candles(minute_walk(BARS))
    store.put_backtest(QUEUED)
    return store


def test_an_attempt_claims_runs_and_stores_what_a_direct_run_gives(store: SqliteStore) -> None:
    announced: list[BacktestRecord] = []
    end = run_attempt(store, JOB, 1, worker="host:1", announce=announced.append,
                      clock=iter(range(T0 + 1, T0 + 100)).__next__)
    direct = run_backtest(store.candles_frame("sim", "BTC-USDT", "1m", T0, JOB.end_ns), SPEC)
    stored = store.backtest("run-1")

    assert (end.outcome, end.status) == ("ended", "SUCCEEDED")
    assert stored == announced[-1]
    assert stored is not None
    assert (stored.status, stored.attempt, stored.worker, stored.progress) == (
        "SUCCEEDED", 1, "host:1", 1.0)
    assert stored.started_ns is not None and stored.finished_ns is not None
    assert T0 < stored.started_ns < stored.finished_ns
    assert msgspec.json.decode(stored.metrics_json or "") == msgspec.to_builtins(direct.metrics)
    assert store.backtest_trades("run-1", limit=1000)["pnl"].to_list() == [
        trade.pnl for trade in direct.trades]
    assert store.backtest_equity("run-1")["equity"].to_list() == direct.equity.equity
    assert [(r.status, r.progress) for r in announced] == [
        ("RUNNING", 0.0), ("RUNNING", 1.0), ("SUCCEEDED", 1.0)]


def test_an_earlier_attempt_leaves_a_run_a_later_one_holds(store: SqliteStore) -> None:
    later = msgspec.structs.replace(QUEUED, status="RUNNING", attempt=2, worker="other:2")
    store.put_backtest(later)
    announced: list[BacktestRecord] = []

    end = run_attempt(store, JOB, 1, worker="stale:1", announce=announced.append)

    assert (end.outcome, end.detail) == ("superseded", "attempt 2 holds it")
    assert store.backtest("run-1") == later
    assert announced == []
    assert store.backtest_trades("run-1").height == 0


def test_a_later_attempt_takes_over_a_run_an_earlier_one_left_running(
    store: SqliteStore,
) -> None:
    store.put_backtest(msgspec.structs.replace(
        QUEUED, status="RUNNING", attempt=1, worker="dead:1", progress=0.5,
        error="attempt 1: the worker process died (signal SIGKILL)",
    ))

    end = run_attempt(store, JOB, 2, worker="alive:2", announce=lambda _: None)
    stored = store.backtest("run-1")

    assert end.outcome == "ended"
    assert stored is not None
    assert (stored.status, stored.attempt, stored.worker, stored.error) == (
        "SUCCEEDED", 2, "alive:2", None)


@pytest.mark.parametrize("status", ["CANCELLED", "SUCCEEDED", "FAILED"])
def test_a_run_that_has_ended_is_not_run_again(store: SqliteStore, status: str) -> None:
    ended = msgspec.structs.replace(QUEUED, status=status, finished_ns=T0 + 5)
    store.put_backtest(ended)

    end = run_attempt(store, JOB, 1, worker="w:1", announce=lambda _: None)

    assert (end.outcome, end.status) == ("gone", status)
    assert store.backtest("run-1") == ended


def test_bad_candles_fail_the_run_with_the_reason_and_are_not_retried(
    store: SqliteStore,
) -> None:
    empty = msgspec.structs.replace(JOB, start_ns=T0 - 10 * MINUTE, end_ns=T0 - MINUTE)

    end = run_attempt(store, empty, 1, worker="w:1", announce=lambda _: None)
    stored = store.backtest("run-1")

    assert (end.outcome, end.status) == ("ended", "FAILED")
    assert stored is not None and stored.status == "FAILED"
    assert stored.error == "candles: expected at least one candle, got none"


def test_giving_up_fails_the_run_with_the_last_attempt_reason(store: SqliteStore) -> None:
    store.put_backtest(msgspec.structs.replace(QUEUED, status="RUNNING", attempt=3))
    note_failure(store, "run-1", 3, "the worker process died (signal SIGSEGV)")
    note_failure(store, "run-1", 2, "a stale note, from an attempt that no longer holds it")
    announced: list[BacktestRecord] = []

    failed = give_up(store, "run-1", 3, None, now_ns=T0 + 9, announce=announced.append)

    assert failed is not None and announced == [failed] and store.backtest("run-1") == failed
    assert (failed.status, failed.finished_ns) == ("FAILED", T0 + 9)
    assert failed.error == (
        "gave up after 3 attempts; the last: the worker process died (signal SIGSEGV)")
    assert give_up(store, "run-1", 3, None, now_ns=T0 + 10, announce=announced.append) is None


def test_the_newer_of_two_versions_follows_the_life_of_a_record() -> None:
    queued = QUEUED
    first = msgspec.structs.replace(queued, status="RUNNING", attempt=1, progress=0.5)
    further = msgspec.structs.replace(first, progress=0.75)
    retried = msgspec.structs.replace(first, attempt=2, progress=0.0)
    cancelled = msgspec.structs.replace(first, status="CANCELLED")

    assert newer(queued, first) is first and newer(first, queued) is first
    assert newer(first, further) is further and newer(further, first) is further
    assert newer(further, retried) is retried and newer(retried, further) is retried
    assert newer(retried, cancelled) is cancelled and newer(cancelled, further) is cancelled
