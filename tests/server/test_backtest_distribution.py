"""Backtests as a distributed service: two GraphQL servers and `candlegraph worker` processes
over one store and one NATS server, all real.

The workers are separate processes (`candlegraph worker --concurrency 1`), killed with
SIGKILL, paused with SIGSTOP or stopped with SIGTERM as a machine failure would; the servers
are real uvicorn servers on loopback. The queue's ack wait is short (2 s), so a lost job is
delivered again quickly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from db.backtest_store import BacktestRecord
from db.sqlite import SqliteStore
from server.app import create_app
from server.backtest_queue import CONSUMER, STREAM
from server.processes import free_port
from server.settings import PREFIX, Settings
from strategies.request import BacktestRequest, base_spec
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec
from strategies.sweep import plan_sweep, run_serially
from tests.conditions import eventually, wait_until
from tests.graphql.clients import GraphQLWs, post
from tests.servers import NatsServer, UvicornServer
from tests.walks import MINUTE, T0, minute_walk

LONG_BARS = 75_000  # three batches of 25,000 bars: seconds of work
SHORT_BARS = 3_000
#: Eight batches: several times the ack wait even on an idle machine (75,000 bars took 1.96 s).
OUTLIVING_BARS = 200_000
ACK_WAIT_S = 2.0
RUN = "mutation($input: BacktestInput!) { runBacktest(input: $input) { id status } }"
SWEEP = """mutation($input: BacktestInput!, $grid: JSON!) {
  runSweep(input: $input, grid: $grid, rankBy: "sharpe") { id } }"""
CANCEL = "mutation($id: ID!) { cancelBacktest(id: $id) { id status } }"
PROGRESS = """subscription($id: ID!) { backtestProgress(id: $id) {
  status progress attempt worker } }"""


async def _equals(value: Any, expected: object) -> bool:
    return bool(await value == expected)


def iso(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def ema_input(symbol: str, bars: int, **changes: Any) -> dict[str, Any]:
    return {
        "exchange": "sim", "symbol": symbol, "timeframe": "1m", "strategy": "ema_cross",
        "start": iso(T0), "end": iso(T0 + bars * MINUTE), "params": {"fast": 50, "slow": 200},
        **changes,
    }


class Worker:
    """A `candlegraph worker` process of its own session (its slot processes share it)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        env.update(settings.to_env())
        self.metrics_port = free_port()
        env["CANDLEGRAPH_WORKER_METRICS_PORT"] = str(self.metrics_port)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "worker", "--concurrency", "1"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.name = f"{socket.gethostname()}:{self.proc.pid}"

    def kill(self) -> None:
        """SIGKILL the worker (its slot process then dies with it)."""
        self.proc.kill()
        self.proc.wait(10)

    def signal_all(self, signum: signal.Signals) -> None:
        os.killpg(self.proc.pid, signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.signal_all(signal.SIGKILL)
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """Its /metrics as {'name{label="value"}': value}; empty while it does not answer."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        return {
            sample.name + "".join(f'{{{k}="{v}"}}' for k, v in sorted(sample.labels.items())):
            sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
        }


class Cluster:
    """Two servers, A and B, and the workers, over one store and one NATS server."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.workers: list[Worker] = []
        self.a = UvicornServer(create_app(settings))
        self.b = UvicornServer(create_app(settings))

    def start_worker(self) -> Worker:
        worker = Worker(self.settings, self.root / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def holder(self, record: BacktestRecord) -> Worker:
        [worker] = [w for w in self.workers if w.name == record.worker]
        return worker

    def restart_a(self) -> None:
        self.a.stop()
        self.a = UvicornServer(create_app(self.settings))

    def stop(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.signal_all(signal.SIGCONT)
            worker.stop()
        self.a.stop()
        self.b.stop()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("distributed")
    nats_server = NatsServer(root / "nats")
    settings = Settings(
        data_dir=root, nats_url=nats_server.url, timeframes=("1m",), sweep_max_runs=10,
        backtest_ack_wait_s=ACK_WAIT_S, backtest_max_attempts=2, log_format="text",
    )
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(LONG_BARS, symbol="ETH-USDT"))
    store.upsert_candles(minute_walk(SHORT_BARS, symbol="BTC-USDT"))
    store.upsert_candles(minute_walk(OUTLIVING_BARS, symbol="SOL-USDT"))
    store.close()
    yield settings
    nats_server.stop()


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[Cluster]:
    cluster = Cluster(settings, settings.data_dir)
    cluster.start_worker()
    cluster.start_worker()
    yield cluster
    cluster.stop()


def record(settings: Settings, id: str) -> BacktestRecord:
    store = SqliteStore(settings.store_path)
    try:
        found = store.backtest(id)
    finally:
        store.close()
    assert found is not None
    return found


def submit(server: UvicornServer, input: dict[str, Any]) -> str:
    body = post(server, RUN, input=input)
    assert "errors" not in body, body
    return str(body["data"]["runBacktest"]["id"])


def running(settings: Settings, id: str, *, progress: float = 0.0) -> BacktestRecord:
    def check() -> BacktestRecord | None:
        found = record(settings, id)
        if found.status == "RUNNING" and found.progress > progress:
            return found
        return None

    return wait_until(check, timeout_s=120, what=f"{id} running past {progress}")


def finished(settings: Settings, id: str, *, timeout_s: float = 120) -> BacktestRecord:
    return wait_until(
        lambda: (r := record(settings, id)).status in {"SUCCEEDED", "FAILED", "CANCELLED"} and r,
        timeout_s=timeout_s, what=f"{id} to end",
    )


def direct(settings: Settings, symbol: str, bars: int) -> Any:
    spec = BacktestSpec(exchange="sim", symbol=symbol, timeframe="1m", strategy="ema_cross",
                        params={"fast": 50, "slow": 200})
    store = SqliteStore(settings.store_path)
    try:
        frame = store.candles_frame("sim", symbol, "1m", T0, T0 + bars * MINUTE)
    finally:
        store.close()
    return run_backtest(frame, spec)


async def follow(server: UvicornServer, id: str) -> list[dict[str, Any]]:
    """Every backtestProgress event from `server` until it completes the subscription."""
    client = await GraphQLWs.connect(server.ws_url)
    try:
        await client.subscribe(PROGRESS, variables={"id": id})
        events: list[dict[str, Any]] = []
        while True:
            message = await client.receive(timeout_s=120)
            if message["type"] == "complete":
                return events
            assert message["type"] == "next" and "errors" not in message["payload"], message
            events.append(message["payload"]["data"]["backtestProgress"])
    finally:
        await client.close()


def done_trades(done: BacktestRecord) -> int:
    return int(msgspec.json.decode(done.metrics_json or "{}")["trade_count"])


async def idle_workers(settings: Settings) -> int:
    """How many workers wait on a pull right now (each pulls only with a free slot)."""
    nc = await nats.connect(settings.nats_url)
    try:
        return (await nc.jetstream().consumer_info(STREAM, CONSUMER)).num_waiting
    finally:
        await nc.close()


async def queue_is_empty(settings: Settings) -> bool:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = await js.stream_info(STREAM)
        consumer = await js.consumer_info(STREAM, CONSUMER)
        return stream.state.messages == 0 and consumer.num_ack_pending == 0
    finally:
        await nc.close()


async def test_a_run_queued_on_one_server_is_followed_and_cancelled_from_the_other(
    cluster: Cluster, settings: Settings
) -> None:
    short = submit(cluster.a, ema_input("BTC-USDT", SHORT_BARS, params={"fast": 5, "slow": 20}))
    events = await follow(cluster.b, short)
    long = submit(cluster.a, ema_input("ETH-USDT", LONG_BARS))
    running(settings, long)
    cancelled = post(cluster.b, CANCEL, id=long)["data"]["cancelBacktest"]
    stopped = finished(settings, long)

    statuses = [event["status"] for event in events]
    assert statuses[-1] == "SUCCEEDED" and "RUNNING" in statuses
    fractions = [event["progress"] for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[-1]["attempt"] == 1
    assert events[-1]["worker"] in {worker.name for worker in cluster.workers}
    assert cancelled == {"id": long, "status": "CANCELLED"}
    assert stopped.status == "CANCELLED"
    # The worker that held it stopped within a batch and stored nothing.
    holder = cluster.holder(stopped)
    wait_until(lambda: f"backtest {long} attempt 1: gone CANCELLED" in holder.log(),
               timeout_s=60, what="the worker to let the cancelled run go")
    store = SqliteStore(settings.store_path)
    assert store.backtest_trades(long).height == 0
    store.close()
    assert await eventually(lambda: queue_is_empty(settings), what="the queue to empty")


async def test_restarting_a_server_leaves_the_runs_of_others_alone_and_long_runs_keep_their_job(
    cluster: Cluster, settings: Settings
) -> None:
    theirs = submit(cluster.b, ema_input("SOL-USDT", OUTLIVING_BARS))
    before = running(settings, theirs)
    cluster.restart_a()
    during = record(settings, theirs)
    done = finished(settings, theirs)

    assert during.status == "RUNNING" and during.attempt == before.attempt == 1
    assert (done.status, done.attempt, done.worker, done.error) == (
        "SUCCEEDED", 1, before.worker, None)
    # It outlived the ack wait on its first delivery: the worker's in-progress acks held it.
    assert done.finished_ns is not None and done.started_ns is not None
    assert (done.finished_ns - done.started_ns) / 1e9 > ACK_WAIT_S


async def test_a_worker_killed_mid_run_has_its_job_finished_once_by_another(
    cluster: Cluster, settings: Settings
) -> None:
    id = submit(cluster.a, ema_input("ETH-USDT", LONG_BARS))
    first = running(settings, id, progress=0.0)
    killed = cluster.holder(first)
    killed.kill()
    done = finished(settings, id)
    cluster.start_worker()  # back to two, for the tests after this one
    expected = direct(settings, "ETH-USDT", LONG_BARS)

    assert (first.attempt, done.status, done.attempt) == (1, "SUCCEEDED", 2)
    assert done.worker is not None and done.worker != killed.name
    assert msgspec.json.decode(done.metrics_json or "") == msgspec.to_builtins(expected.metrics)
    store = SqliteStore(settings.store_path)
    trades = store.backtest_trades(id, limit=10_000)
    store.close()
    assert trades["position_id"].to_list() == [t.position_id for t in expected.trades]
    assert trades["pnl"].to_list() == [t.pnl for t in expected.trades]
    assert await eventually(lambda: queue_is_empty(settings), what="the queue to empty")


async def test_a_worker_presumed_dead_cannot_overwrite_the_retried_run(
    cluster: Cluster, settings: Settings
) -> None:
    id = submit(cluster.a, ema_input("ETH-USDT", LONG_BARS))
    first = running(settings, id, progress=0.0)
    stalled = cluster.holder(first)
    stalled.signal_all(signal.SIGSTOP)  # no in-progress acks, no work, no writes
    done = finished(settings, id)
    store = SqliteStore(settings.store_path)
    stored_trades = store.backtest_trades(id, limit=10_000)
    stalled.signal_all(signal.SIGCONT)
    # It wakes mid-batch, finishes that batch, and finds the run taken and ended.
    wait_until(lambda: f"backtest {id} attempt 1: gone SUCCEEDED" in stalled.log(),
               timeout_s=60, what="the stalled worker to give the run up")
    after = record(settings, id)

    assert (done.status, done.attempt) == ("SUCCEEDED", 2)
    assert done.worker != stalled.name
    assert after == done
    assert stored_trades.height == done_trades(done)
    assert store.backtest_trades(id, limit=10_000).equals(stored_trades)
    store.close()


async def test_a_job_that_always_kills_its_worker_fails_after_the_last_attempt(
    cluster: Cluster, settings: Settings
) -> None:
    id = submit(cluster.a, ema_input("ETH-USDT", LONG_BARS))
    for attempt in (1, 2):
        holding = wait_until(
            lambda attempt=attempt: (r := record(settings, id)).status == "RUNNING"  # type: ignore[misc]  # mypy cannot type a lambda's default
            and r.attempt == attempt and r, timeout_s=120, what=f"attempt {attempt} to start",
        )
        cluster.holder(holding).kill()
        cluster.start_worker()
    failed = finished(settings, id)

    assert (failed.status, failed.attempt) == ("FAILED", 2)
    assert failed.error == (
        "gave up after 2 attempts; the last: its worker stopped before finishing it"
        " (killed, or silent for the ack wait)"
    )
    assert await eventually(lambda: queue_is_empty(settings), what="the queue to empty")


async def test_a_stopped_worker_hands_its_job_back_at_once(
    cluster: Cluster, settings: Settings
) -> None:
    id = submit(cluster.a, ema_input("ETH-USDT", LONG_BARS))
    first = running(settings, id)
    stopping = cluster.holder(first)
    stopped_ns = time.time_ns()
    stopping.proc.send_signal(signal.SIGTERM)
    second = wait_until(
        lambda: (r := record(settings, id)).attempt == 2 and r.status == "RUNNING" and r,
        timeout_s=60, what="the job's second attempt",
    )
    exit_code = stopping.proc.wait(15)
    cluster.start_worker()
    post(cluster.a, CANCEL, id=id)

    assert exit_code == 0
    assert second.worker != stopping.name
    assert second.started_ns is not None
    # Handed back, not left to the ack wait.
    assert (second.started_ns - stopped_ns) / 1e9 < ACK_WAIT_S


async def test_a_sweep_over_two_worker_processes_ranks_exactly_as_a_serial_run(
    cluster: Cluster, settings: Settings
) -> None:
    grid: dict[str, Any] = {"fast": [3, 5, 8, 13, 40], "slow": [20, 30]}
    input = ema_input("BTC-USDT", SHORT_BARS, params={})
    # Both workers up and pulling, so the runs spread over the two.
    await eventually(lambda: _equals(idle_workers(settings), 2), timeout_s=60,
                     what="two idle workers")
    body = post(cluster.b, SWEEP, input=input, grid=grid)
    id = body["data"]["runSweep"]["id"]
    events = await follow(cluster.a, id)
    sweep = record(settings, id)
    store = SqliteStore(settings.store_path)
    runs = store.backtests(sweep_id=id, limit=100)
    frame = store.candles_frame("sim", "BTC-USDT", "1m", T0, T0 + SHORT_BARS * MINUTE)
    store.close()
    request = BacktestRequest(exchange="sim", symbol="BTC-USDT", timeframe="1m",
                              strategy="ema_cross", start_ns=T0, end_ns=T0 + SHORT_BARS * MINUTE)
    serial = run_serially(frame, plan_sweep(base_spec(request, timeframes=("1m",)), grid, "sharpe"))
    ranking = msgspec.json.decode(sweep.metrics_json or "")
    alive = {worker.name for worker in cluster.workers if worker.proc.poll() is None}

    assert events[-1]["status"] == sweep.status == "SUCCEEDED"
    assert [(run["params"], run["metrics"]) for run in ranking["runs"]] == [
        (run.params, msgspec.to_builtins(run.metrics)) for run in serial.ranking.runs]
    assert ranking["skipped"] == msgspec.to_builtins(serial.ranking.skipped)
    assert len(runs) == len(serial.ranking.runs) == 8
    assert {run.worker for run in runs} == alive and len(alive) == 2


def _summed(workers: list[Worker], name: str) -> float:
    return sum(worker.metrics().get(name, 0.0) for worker in workers)


async def test_the_workers_metrics_count_a_sweeps_runs_and_see_the_queue_drain(
    cluster: Cluster, settings: Settings
) -> None:
    await eventually(lambda: _equals(idle_workers(settings), 2), timeout_s=60,
                     what="two idle workers")
    alive = [worker for worker in cluster.workers if worker.proc.poll() is None]
    wait_until(lambda: all(worker.metrics() for worker in alive), timeout_s=30,
               what="every worker serving /metrics")
    succeeded = 'candlegraph_worker_jobs_total{outcome="succeeded"}'
    timed = "candlegraph_worker_run_seconds_count"
    failures = [f'candlegraph_worker_failures_total{{kind="{kind}"}}'
                for kind in ("run", "process_died", "store", "bad_job")]
    before = {name: _summed(alive, name) for name in (succeeded, timed, *failures)}
    grid: dict[str, Any] = {"fast": [3, 5, 8], "slow": [20, 30]}
    body = post(cluster.a, SWEEP, input=ema_input("BTC-USDT", SHORT_BARS, params={}), grid=grid)
    id = body["data"]["runSweep"]["id"]
    assert finished(settings, id).status == "SUCCEEDED"
    store = SqliteStore(settings.store_path)
    runs = len(store.backtests(sweep_id=id, limit=100))
    store.close()
    wait_until(lambda: _summed(alive, succeeded) - before[succeeded] >= runs, timeout_s=30,
               what="the workers to count the sweep's runs")
    drained = 'candlegraph_backtest_queue_jobs{state="pending"}'
    wait_until(
        lambda: all(w.metrics().get(drained) == 0 and w.metrics().get(
            'candlegraph_backtest_queue_jobs{state="running"}') == 0 for w in alive),
        timeout_s=30, what="every worker to see the queue empty",
    )
    after = {name: _summed(alive, name) for name in before}

    assert runs == 6
    assert after[succeeded] - before[succeeded] == runs
    assert after[timed] - before[timed] == runs
    assert [after[name] - before[name] for name in failures] == [0, 0, 0, 0]
    assert [worker.metrics()["candlegraph_worker_slots"] for worker in alive] == [1, 1]
