"""The backtest service and a worker in this process, over a real SQLite store and real NATS.

The API tests (`tests/graphql/test_backtests.py`) cover queueing, results, sweeps and bad input
over HTTP, and `tests/server/test_backtest_distribution.py` servers and workers in separate
processes; these cover what is easier to see from inside: how fast a running job stops when
cancelled, a worker process dying under its job, and that starting a service or a worker
changes no record.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from db.backtest_store import BacktestRecord, BacktestStatus
from db.sqlite import SqliteStore
from server.backtest_queue import JetStreamQueue
from server.backtest_worker import BacktestWorker
from server.settings import Settings, SettingsError
from strategies.jobs import TERMINAL
from strategies.request import BacktestRequest
from strategies.service import BacktestService
from strategies.sweep import MAX_COMBINATIONS
from tests.servers import NatsServer
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
def nats_here(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats-service"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, nats_here: NatsServer) -> Settings:
    # One attempt: a job whose process dies is failed at once, with the reason.
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("backtests"), nats_url=nats_here.url,
        timeframes=("1m",), backtest_max_attempts=1,
    )
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(LONG_BARS, symbol="ETH-USDT"))
    store.upsert_candles(minute_walk(SHORT_BARS, symbol="BTC-USDT"))
    store.close()
    return settings


@pytest.fixture(scope="module")
async def service(settings: Settings) -> AsyncIterator[BacktestService]:
    store = SqliteStore(settings.store_path)
    nc = await nats.connect(settings.nats_url)
    queue = JetStreamQueue(nc)
    await queue.start()
    stop = asyncio.Event()
    worker = asyncio.create_task(
        BacktestWorker(settings, nc, store, concurrency=1).run(stop)
    )
    yield BacktestService(store, queue, timeframes=settings.timeframes, sweep_max_runs=10)
    stop.set()
    await worker
    await nc.drain()
    store.close()


async def final(service: BacktestService, id: str) -> BacktestRecord:
    async for record in service.progress(id):
        if record.status in TERMINAL:
            return record
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
    # One worker process: the next job starts only once the long one has let go of it.
    after = await final(service, (await service.submit(request("BTC-USDT", SHORT_BARS))).id)

    assert first_progress == pytest.approx(1 / 6)
    assert cancelled.status == "CANCELLED"
    assert after.status == "SUCCEEDED"
    assert after.started_ns is not None
    # Five batches were left; the worker stopped at the end of the one it was in.
    assert after.started_ns - cancelled_ns < 2.5 * batch_ns
    store = SqliteStore(settings.store_path)
    assert (await service.get(long.id)).status == "CANCELLED"  # type: ignore[union-attr]  # the record exists: the test made it
    assert store.backtest_trades(long.id).height == 0
    assert store.backtest_equity(long.id).height == 0


async def test_a_job_whose_process_dies_fails_with_the_reason_and_the_next_one_runs(
    service: BacktestService,
) -> None:
    long = await service.submit(request("ETH-USDT", LONG_BARS))
    async for record in service.progress(long.id):
        if record.status == "RUNNING":
            break
    for process in multiprocessing.active_children():
        process.kill()

    failed = await final(service, long.id)
    after = await final(service, (await service.submit(request("BTC-USDT", SHORT_BARS))).id)

    assert failed.status == "FAILED"
    assert failed.error == (
        "gave up after 1 attempts; the last: the worker process died (signal SIGKILL)"
    )
    assert after.status == "SUCCEEDED"


async def test_starting_a_service_and_a_worker_changes_no_record_of_another_process(
    tmp_path: Path,
) -> None:
    nats_server = NatsServer(tmp_path / "nats")  # its own queue: the module's is on another store
    settings = Settings(data_dir=tmp_path, nats_url=nats_server.url, timeframes=("1m",))
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(SHORT_BARS))
    theirs: tuple[BacktestStatus, ...] = ("QUEUED", "RUNNING", "SUCCEEDED")
    left = {
        status: BacktestRecord(
            id=f"theirs-{status.lower()}", status=status, strategy="ema_cross", exchange="sim",
            symbol="BTC-USDT", timeframe="1m", start_ns=T0, end_ns=T0 + MINUTE,
            created_ns=T0 + index, attempt=1 if status != "QUEUED" else 0,
            worker=None if status == "QUEUED" else "elsewhere:1",
        )
        for index, status in enumerate(theirs)
    }
    for record in left.values():
        store.put_backtest(record)
    nc = await nats.connect(settings.nats_url)
    try:
        queue = JetStreamQueue(nc)
        await queue.start()
        service = BacktestService(store, queue, timeframes=settings.timeframes, sweep_max_runs=1)
        stop = asyncio.Event()
        worker = asyncio.create_task(BacktestWorker(settings, nc, store, concurrency=1).run(stop))
        # A run of our own, end to end: both have started and the worker has pulled.
        ours = await final(service, (await service.submit(request("BTC-USDT", SHORT_BARS))).id)
        stop.set()
        await worker
    finally:
        await nc.drain()
        nats_server.stop()

    assert ours.status == "SUCCEEDED"
    assert [store.backtest(record.id) for record in left.values()] == list(left.values())
    store.close()


async def test_a_backtest_the_queue_cannot_take_is_refused_and_stored_failed(
    tmp_path: Path,
) -> None:
    without_jetstream = NatsServer(monitor=True)
    store = SqliteStore(tmp_path / "store.sqlite")
    store.upsert_candles(minute_walk(SHORT_BARS))
    nc = await nats.connect(without_jetstream.url)
    try:
        queue = JetStreamQueue(nc)
        await queue.start()  # logs that backtests cannot be queued yet; the server stays up
        service = BacktestService(store, queue, timeframes=("1m",), sweep_max_runs=1)
        with pytest.raises(NatsError):
            await service.submit(request("BTC-USDT", SHORT_BARS))
    finally:
        await nc.close()
        without_jetstream.stop()

    [stored] = store.backtests()
    assert stored.status == "FAILED"
    assert stored.error is not None and stored.error.startswith("could not be queued: ")
    store.close()


def test_backtest_settings_come_from_the_environment_and_are_bounded() -> None:
    settings = Settings.from_env({
        "CANDLEGRAPH_BACKTEST_WORKERS": "3", "CANDLEGRAPH_SWEEP_MAX_RUNS": "50",
        "CANDLEGRAPH_WORKER_CONCURRENCY": "4", "CANDLEGRAPH_BACKTEST_ACK_WAIT_S": "12.5",
        "CANDLEGRAPH_BACKTEST_MAX_ATTEMPTS": "5",
    })

    assert (settings.backtest_workers, settings.sweep_max_runs, settings.worker_concurrency,
            settings.backtest_ack_wait_s, settings.backtest_max_attempts) == (3, 50, 4, 12.5, 5)
    defaults = Settings()
    assert (defaults.backtest_workers, defaults.sweep_max_runs, defaults.worker_concurrency,
            defaults.backtest_ack_wait_s, defaults.backtest_max_attempts) == (0, 200, 2, 30.0, 3)
    assert Settings(sweep_max_runs=MAX_COMBINATIONS).sweep_max_runs == MAX_COMBINATIONS
    with pytest.raises(SettingsError, match="sweep_max_runs must be 1 to 1000, got 1001"):
        Settings(sweep_max_runs=MAX_COMBINATIONS + 1)
    with pytest.raises(SettingsError, match="backtest_workers must be 0 to 64 processes, got 65"):
        Settings(backtest_workers=65)
    with pytest.raises(SettingsError, match="worker_concurrency must be 1 to 64 processes, got 0"):
        Settings(worker_concurrency=0)
    with pytest.raises(SettingsError, match=r"backtest_ack_wait_s must be >= 0\.5 s, got 0\.1"):
        Settings(backtest_ack_wait_s=0.1)
    with pytest.raises(SettingsError, match="backtest_max_attempts must be 1 to 100, got 0"):
        Settings(backtest_max_attempts=0)
