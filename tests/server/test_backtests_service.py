"""The backtest service over a real SQLite store and a real pool of worker processes.

The API tests (`tests/graphql/test_backtests.py`) cover queueing, results, sweeps and bad input
over HTTP; these cover what is easier to see from inside: how fast a running job stops when
cancelled, a worker process dying, and the records a stopped server leaves behind.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db.sqlite import SqliteStore
from db.store import BacktestRecord
from graphql_schema.backtest_service import TERMINAL, BacktestRequest
from server.backtests import BacktestService
from server.settings import Settings, SettingsError
from strategies.sweep import MAX_COMBINATIONS
from tests.walks import MINUTE, T0, minute_walk

LONG_BARS = 150_000  # six engine batches of 25,000 bars
SHORT_BARS = 500


def request(symbol: str, bars: int) -> BacktestRequest:
    # A slow EMA cross trades rarely, so a batch of bars takes about as long as the next one.
    return BacktestRequest(
        exchange="sim", symbol=symbol, timeframe="1m", strategy="ema_cross",
        start_ns=T0, end_ns=T0 + bars * MINUTE, params={"fast": 50, "slow": 200},
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("backtests"), backtest_workers=1)
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(LONG_BARS, symbol="ETH-USDT"))
    store.upsert_candles(minute_walk(SHORT_BARS, symbol="BTC-USDT"))
    store.close()
    return settings


@pytest.fixture(scope="module")
async def service(settings: Settings) -> AsyncIterator[BacktestService]:
    store = SqliteStore(settings.store_path)
    service = BacktestService(store, settings)
    await service.start()
    yield service
    await service.close()
    store.close()


async def final(service: BacktestService, id: str) -> BacktestRecord:
    async for record in service.progress(id):
        if record.status in TERMINAL:
            return record  # type: ignore[return-value]
    raise AssertionError(f"progress of {id} ended before a terminal status")


async def test_cancelling_a_running_backtest_stops_its_worker_within_a_batch(
    service: BacktestService, settings: Settings
) -> None:
    long = await service.submit(request("ETH-USDT", LONG_BARS))
    started_ns: int | None = None
    async for record in service.progress(long.id):
        if record.status == "RUNNING" and record.progress == 0:
            started_ns = time.time_ns()
        if record.progress > 0:
            break
    assert started_ns is not None, "the RUNNING state at progress 0 was never seen"
    # Loading, converting and the first batch: an upper bound on one batch's time.
    batch_ns = time.time_ns() - started_ns
    first_progress = record.progress
    cancelled_ns = time.time_ns()
    cancelled = await service.cancel(long.id)
    # One worker: the next job starts only once the long one has let go of it.
    after = await final(service, (await service.submit(request("BTC-USDT", SHORT_BARS))).id)

    assert first_progress == pytest.approx(1 / 6)
    assert cancelled.status == "CANCELLED"
    assert after.status == "SUCCEEDED"
    assert after.started_ns is not None
    # Five batches were left; the worker stopped at the end of the one it was in.
    assert after.started_ns - cancelled_ns < 2.5 * batch_ns
    store = SqliteStore(settings.store_path)
    assert (await service.get(long.id)).status == "CANCELLED"  # type: ignore[union-attr]
    assert store.backtest_trades(long.id).height == 0
    assert store.backtest_equity(long.id).height == 0


async def test_a_dead_worker_fails_its_job_and_the_pool_is_replaced(
    service: BacktestService,
) -> None:
    long = await service.submit(request("ETH-USDT", LONG_BARS))
    async for record in service.progress(long.id):
        if record.status == "RUNNING":
            break
    for worker in multiprocessing.active_children():
        worker.kill()

    failed = await final(service, long.id)
    after = await final(service, (await service.submit(request("BTC-USDT", SHORT_BARS))).id)

    assert failed.status == "FAILED"
    assert failed.error is not None and failed.error.startswith("the worker process died")
    assert after.status == "SUCCEEDED"


async def test_records_a_stopped_server_left_unfinished_are_failed_on_start(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, backtest_workers=1)
    store = SqliteStore(settings.store_path)
    left = {
        status: BacktestRecord(
            id=f"left-{status.lower()}", status=status, strategy="ema_cross", exchange="sim",
            symbol="BTC-USDT", timeframe="1m", start_ns=T0, end_ns=T0 + MINUTE,
            created_ns=T0 + index,
        )
        for index, status in enumerate(("QUEUED", "RUNNING", "SUCCEEDED"))
    }
    for record in left.values():
        store.put_backtest(record)
    service = BacktestService(store, settings, clock=lambda: T0 + 10 * MINUTE)
    await service.start()
    await service.close()

    queued, running, done = (store.backtest(record.id) for record in left.values())
    assert queued is not None and running is not None
    assert (queued.status, running.status) == ("FAILED", "FAILED")
    assert queued.error == running.error == (
        "interrupted: the server stopped before this backtest finished; run it again"
    )
    assert queued.finished_ns == running.finished_ns == T0 + 10 * MINUTE
    assert done == left["SUCCEEDED"]


def test_backtest_settings_come_from_the_environment_and_are_bounded() -> None:
    settings = Settings.from_env(
        {"CANDLEGRAPH_BACKTEST_WORKERS": "3", "CANDLEGRAPH_SWEEP_MAX_RUNS": "50"}
    )

    assert (settings.backtest_workers, settings.sweep_max_runs) == (3, 50)
    assert (Settings().backtest_workers, Settings().sweep_max_runs) == (2, 200)
    assert Settings(sweep_max_runs=MAX_COMBINATIONS).sweep_max_runs == MAX_COMBINATIONS
    with pytest.raises(SettingsError, match="sweep_max_runs must be 1 to 1000, got 1001"):
        Settings(sweep_max_runs=MAX_COMBINATIONS + 1)
    with pytest.raises(SettingsError, match="backtest_workers must be 1 to 64 processes, got 0"):
        Settings(backtest_workers=0)


async def test_closing_does_not_wait_on_an_event_queue_a_killed_worker_left_locked(
    tmp_path: Path,
) -> None:
    # A worker killed while putting a progress event keeps the queue's write lock for ever;
    # the shutdown must not need to put anything through it.
    settings = Settings(data_dir=tmp_path, backtest_workers=1)
    store = SqliteStore(settings.store_path)
    service = BacktestService(store, settings)
    await service.start()
    assert service._events._wlock.acquire(timeout=1)  # as the killed worker left it
    try:
        await asyncio.wait_for(service.close(), timeout=30)
    finally:
        store.close()
