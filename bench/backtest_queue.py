"""Backtests through the job queue: a sweep's speed-up over worker processes, and the queue's
own cost. Prints `name: value unit` lines.

A NATS server and two `candlegraph worker --concurrency 1` processes are started over an
embedded store in a temporary directory holding bench/backtest_speed.py's five years of
1-hour candles; jobs are submitted through `strategies.service.BacktestService` on a
`server.backtest_queue.JetStreamQueue`, as a GraphQL server does. Each worker has run a job
before anything is measured (its processes started, NautilusTrader imported).

- sweep_queue_s: backtest_speed.py's 20-run EMA-cross sweep, submit to SUCCEEDED (ranked);
  sweep_serial_s: the sum of the same 20 runs' times, one after another in this process
  (`strategies.sweep.run_serially`, candles already loaded);
  sweep_speedup_queue = sweep_serial_s / sweep_queue_s. The two rankings are checked equal.
  The machine is shared: each is the best of `--repeat` tries, the two interleaved.
- queue_overhead_ms: for a run of 100 candles, the time from `submit` being called to its
  RUNNING announcement arriving (the job stored, queued, pulled, claimed, announced), plus the
  time from the worker storing SUCCEEDED (the record's finished_ns) to that announcement
  arriving; the median over `--runs` runs, one at a time. submit_to_running_ms and
  succeeded_to_visible_ms are its two parts (medians).

Run: .venv/bin/python bench/backtest_queue.py [--runs 40] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats
from backtest_speed import EXCHANGE, HOURS_PER_5_YEARS, START_NS, SWEEP_GRID, SYMBOL, random_walk
from nats.aio.msg import Msg

from db.backtest_store import BacktestRecord
from db.sqlite import SqliteStore
from server.backtest_queue import JetStreamQueue
from server.processes import free_port, nats_server_binary, stop_all, wait_for_port
from server.settings import PREFIX, Settings
from strategies.jobs import TERMINAL
from strategies.request import BacktestRequest, base_spec
from strategies.service import BacktestService
from strategies.sweep import plan_sweep, run_serially

HOUR = 3_600_000_000_000
ROOT = Path(__file__).resolve().parent.parent


def request(hours: int, params: dict[str, int | float | bool]) -> BacktestRequest:
    return BacktestRequest(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe="1h", strategy="ema_cross",
        start_ns=START_NS, end_ns=START_NS + hours * HOUR, params=params,
        starting_balance=1_000_000.0, quantity=0.1,
    )


class Heard:
    """When each record's announcements arrived here, by (id, status)."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], int] = {}
        self.changed = asyncio.Event()

    async def received(self, msg: Msg) -> None:
        record = msgspec.json.decode(msg.data, type=BacktestRecord)
        self.at.setdefault((record.id, record.status), time.time_ns())
        self.changed.set()

    async def wait_for(self, id: str, statuses: frozenset[str], timeout_s: float = 600) -> str:
        async with asyncio.timeout(timeout_s):
            while True:
                for status in statuses:
                    if (id, status) in self.at:
                        return status
                self.changed.clear()
                await self.changed.wait()


async def measure(settings: Settings, runs: int, repeat: int) -> dict[str, float]:
    store = SqliteStore(settings.store_path)
    nc = await nats.connect(settings.nats_url)
    queue = JetStreamQueue(nc)
    await queue.start()
    service = BacktestService(store, queue, timeframes=("1h",), sweep_max_runs=1000)
    heard = Heard()
    await nc.subscribe("backtests.events.*", cb=heard.received)
    try:
        # Warm both workers: runs until each has run one.
        workers: set[str] = set()
        while len(workers) < 2:
            sweep = await service.submit_sweep(request(2000, {}), {"fast": [5, 10]}, "sharpe")
            await heard.wait_for(sweep.id, TERMINAL)
            workers |= {run.worker for run in store.backtests(sweep_id=sweep.id) if run.worker}

        grid = dict(SWEEP_GRID)
        candles = store.candles_frame(EXCHANGE, SYMBOL, "1h", START_NS,
                                      START_NS + HOURS_PER_5_YEARS * HOUR)
        plan = plan_sweep(base_spec(request(HOURS_PER_5_YEARS, {}), timeframes=("1h",)), grid,
                          "sharpe")
        queue_s = serial_s = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            sweep = await service.submit_sweep(request(HOURS_PER_5_YEARS, {}), grid, "sharpe")
            status = await heard.wait_for(sweep.id, TERMINAL)
            queue_s = min(queue_s, time.perf_counter() - started)
            assert status == "SUCCEEDED", status
            serial = run_serially(candles, plan)
            serial_s = min(serial_s, sum(serial.run_s))
            stored = store.backtest(sweep.id)
            assert stored is not None and stored.metrics_json is not None
            ranked = msgspec.json.decode(stored.metrics_json)["runs"]
            assert [(run["params"], run["metrics"]) for run in ranked] == [
                (run.params, msgspec.to_builtins(run.metrics)) for run in serial.ranking.runs
            ], "the queued sweep ranks differently from the serial one"

        to_running, to_visible = [], []
        for _ in range(runs):
            submitted = time.time_ns()
            record = await service.submit(request(100, {"fast": 5, "slow": 20}))
            await heard.wait_for(record.id, frozenset({"RUNNING"}))
            await heard.wait_for(record.id, frozenset({"SUCCEEDED"}))
            done = store.backtest(record.id)
            assert done is not None and done.finished_ns is not None
            to_running.append(heard.at[(record.id, "RUNNING")] - submitted)
            to_visible.append(heard.at[(record.id, "SUCCEEDED")] - done.finished_ns)
        overhead = [a + b for a, b in zip(to_running, to_visible, strict=True)]
    finally:
        await nc.drain()
        store.close()
    return {
        "sweep_runs": len(plan.runs),
        "sweep_serial_s": serial_s,
        "sweep_queue_s": queue_s,
        "sweep_speedup_queue": serial_s / queue_s,
        "submit_to_running_ms": statistics.median(to_running) / 1e6,
        "succeeded_to_visible_ms": statistics.median(to_visible) / 1e6,
        "queue_overhead_ms": statistics.median(overhead) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs timed for the overhead")
    parser.add_argument("--repeat", type=int, default=2, help="tries of each sweep (best kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="candlegraph-bench-") as directory:
        root = Path(directory)
        port = free_port()
        settings = Settings(data_dir=root, nats_url=f"nats://127.0.0.1:{port}",
                            timeframes=("1h",), log_level="WARNING")
        store = SqliteStore(settings.store_path)
        store.upsert_candles(random_walk(HOURS_PER_5_YEARS, "1h", seed=2, sigma=0.006))
        store.close()
        nats_proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js",
             "-sd", str(root / "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        env.update(settings.to_env(), CANDLEGRAPH_WORKER_METRICS_PORT="0")
        workers = []
        try:
            wait_for_port("127.0.0.1", port, timeout_s=10, proc=nats_proc)
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "server.cli", "worker", "--concurrency", "1"],
                    env=env, cwd=ROOT,
                )
                for _ in range(2)
            ]
            figures = asyncio.run(measure(settings, args.runs, args.repeat))
        finally:
            stop_all(workers, timeout_s=15)
            stop_all([nats_proc], timeout_s=5)
    units = {"sweep_runs": "runs", "sweep_speedup_queue": "ratio"}
    for name, value in figures.items():
        unit = units.get(name, "s" if name.endswith("_s") else "ms")
        print(f"{name}: {value:.3f} {unit}" if unit != "runs" else f"{name}: {value:.0f} runs")
    print(f"# load average: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
