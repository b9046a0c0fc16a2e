"""A process that dies while ending a run of a search or walk-forward loses nothing.

The queue delivers the dead process's job again; the attempt that gets it finds the run ended
and `resume`s what was left undone (`strategies.attempt.not_run`). Here the queue is a list
driven in this process, the jobs run by `run_attempt` as a worker's slot runs them, and the
process "dies" (an exception no code catches) at each point between storing a run's result and
queuing what comes after it. Every interrupted search or walk-forward must end with the result
of one that was never interrupted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from db.backtest_store import BacktestRecord
from db.sqlite import SqliteStore
from strategies.attempt import give_up, run_attempt
from strategies.jobs import TERMINAL, Job
from strategies.request import BacktestRequest
from strategies.service import BacktestService, SearchRequest, WalkForwardRequest
from tests.walks import MINUTE, T0, minute_walk

BARS = 3_000
REQUEST = BacktestRequest(
    exchange="sim", symbol="BTC-USDT", timeframe="1m", strategy="ema_cross",
    start_ns=T0, end_ns=T0 + BARS * MINUTE,
)
SEARCH = SearchRequest(method="TPE", trials=8, batch=3, seed=11,
                       space={"fast": {"min": 3, "max": 20}, "slow": {"min": 21, "max": 80}})


class Died(BaseException):
    """The process died here: nothing in the code under test catches it."""


class DyingStore(SqliteStore):
    """The embedded store, in a process that dies before the write `dies_at` picks."""

    dies_at: Callable[[BacktestRecord], bool] | None = None

    def put_backtest(self, record: BacktestRecord) -> None:
        if self.dies_at is not None and self.dies_at(record):
            self.dies_at = None
            raise Died(f"before storing {record.id}")
        super().put_backtest(record)


class ListQueue:
    """The job queue as a list: a job queued again while still waiting is dropped, as
    JetStream drops a message whose `Nats-Msg-Id` it holds."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[Job, int]] = deque()

    def put(self, jobs: Sequence[Job], attempt: int = 1) -> None:
        for job in jobs:
            if all(job.id != waiting.id for waiting, _ in self.waiting):
                self.waiting.append((job, attempt))

    async def enqueue(self, jobs: Sequence[Job]) -> None:
        self.put(jobs)

    async def announce(self, record: BacktestRecord) -> None:
        pass

    @asynccontextmanager
    async def follow(self, id: str) -> AsyncIterator[Any]:
        raise NotImplementedError
        yield


@pytest.fixture
def store(tmp_path: Path) -> DyingStore:
    store = DyingStore(tmp_path / "store.sqlite")
    store.upsert_candles(minute_walk(BARS))
    return store


def submit(store: DyingStore, queue: ListQueue, walk: WalkForwardRequest | None = None) -> str:
    service = BacktestService(store, queue, timeframes=("1m",), sweep_max_runs=100)
    if walk is not None:
        return asyncio.run(service.submit_walkforward(REQUEST, walk)).id
    return asyncio.run(service.submit_sweep(REQUEST, None, "sharpe", SEARCH)).id


def drive(
    store: DyingStore, queue: ListQueue, *,
    dies_after: Callable[[BacktestRecord], bool] | None = None, drops_jobs_of: int | None = None,
    was_last_attempt: bool = False,
) -> int:
    """Run queued jobs until none is left. The process dies once: after announcing the first
    record `dies_after` picks, at the write `store.dies_at` picks, or, for the `drops_jobs_of`-th
    job, after the attempt but before its jobs are queued. The job it was on comes back as
    attempt 2 (the queue's redelivery), after the jobs already waiting; or, if that
    `was_last_attempt`, the worker gives it up (`give_up`), as it does past `max_attempts`.
    How many died."""
    deaths, handled = 0, 0

    def announce(record: BacktestRecord) -> None:
        nonlocal dies_after
        if dies_after is not None and dies_after(record):
            dies_after = None
            raise Died(f"after announcing {record.id} {record.status}")

    while queue.waiting:
        job, attempt = queue.waiting.popleft()
        handled += 1
        try:
            end = run_attempt(store, job, attempt, worker="w", announce=announce)
            if handled == drops_jobs_of:
                raise Died("before queuing the attempt's jobs")
        except Died:
            deaths += 1
            if was_last_attempt:
                jobs: list[Job] = []
                give_up(store, job.id, attempt, None, now_ns=T0, announce=announce,
                        sweep_id=job.sweep_id, jobs=jobs)
                queue.put(jobs)
            else:
                queue.put([job], attempt + 1)
            continue
        queue.put(end.jobs)
    return deaths


def outcome(store: DyingStore, id: str) -> tuple[str, Any]:
    """A finished record's status and result, without the record ids it names."""
    record = store.backtest(id)
    assert record is not None and record.status in TERMINAL
    result = msgspec.json.decode(record.metrics_json or "null")
    for key in ("runs", "failed"):
        for run in result.get(key, []) if isinstance(result, dict) else []:
            run.pop("id", None)
    for fold in result.get("folds", []) if isinstance(result, dict) else []:
        fold.pop("sweep_id")
        fold.pop("test_id")
    return record.status, result


@pytest.fixture
def clean_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    store = DyingStore(tmp_path_factory.mktemp("clean") / "store.sqlite")
    store.upsert_candles(minute_walk(BARS))
    queue = ListQueue()
    id = submit(store, queue)
    assert drive(store, queue) == 0
    return outcome(store, id)


@pytest.mark.parametrize(
    "where",
    ["after its result", "after its result, on its last attempt", "before queuing its jobs"],
)
def test_a_search_whose_batch_ender_died_ends_as_if_it_had_not(
    store: DyingStore, clean_search: tuple[str, Any], where: str
) -> None:
    queue = ListQueue()
    id = submit(store, queue)
    # The third job is the first batch's last run: its end asks for the second batch.
    if where.startswith("after its result"):
        third = queue.waiting[2][0].id
        deaths = drive(store, queue, dies_after=lambda r: r.id == third and r.status in TERMINAL,
                       was_last_attempt=where.endswith("last attempt"))
    else:
        deaths = drive(store, queue, drops_jobs_of=3)

    assert deaths == 1
    assert outcome(store, id) == clean_search
    assert clean_search[0] == "SUCCEEDED" and len(clean_search[1]["runs"]) == 8


def test_a_search_whose_batch_was_half_stored_stores_the_rest_once(
    store: DyingStore, clean_search: tuple[str, Any]
) -> None:
    queue = ListQueue()
    id = submit(store, queue)
    stored: list[str] = []

    def second_trial(record: BacktestRecord) -> bool:
        # The first of the second batch's runs is stored; the process dies before the second.
        if record.kind == "backtest" and record.sweep_id == id and record.status == "QUEUED":
            stored.append(record.id)
        return len(stored) == 2

    store.dies_at = second_trial
    deaths = drive(store, queue)

    assert deaths == 1
    assert outcome(store, id) == clean_search
    assert len(store.backtests(sweep_id=id, limit=100)) == 8


def test_a_walk_forward_whose_fold_ender_died_before_its_test_run_ends_as_if_it_had_not(
    store: DyingStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    walk = WalkForwardRequest(folds=2, train_bars=1_000, rank_by="sharpe",
                              grid={"fast": [5, 10], "slow": [30, 60]})
    clean_store = DyingStore(tmp_path_factory.mktemp("clean-walk") / "store.sqlite")
    clean_store.upsert_candles(minute_walk(BARS))
    clean_queue = ListQueue()
    clean_id = submit(clean_store, clean_queue, walk)
    assert drive(clean_store, clean_queue) == 0
    queue = ListQueue()
    id = submit(store, queue, walk)
    store.dies_at = lambda r: r.sweep_id == id and r.kind == "backtest"  # a fold's test run
    deaths = drive(store, queue)

    assert deaths == 1
    status, result = outcome(store, id)
    assert status == "SUCCEEDED" and len(result["folds"]) == 2
    assert (status, result) == outcome(clean_store, clean_id)
    tests = [r for r in store.backtests(sweep_id=id, limit=100) if r.kind == "backtest"]
    assert len(tests) == 2
