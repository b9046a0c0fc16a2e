"""Research tools: walk-forward over the workers, and TPE against the grid. Prints
`name: value unit` lines.

- walkforward_s: a walk-forward over a year of 1-minute candles (525,600 bars), 12 rolling
  folds with train_fraction 0.25 (about 14,200 training and 42,600 test bars each), a 20-point
  EMA-cross grid on every training window (240 in-sample runs, then 12 out-of-sample runs):
  submit to SUCCEEDED through `strategies.service.BacktestService` on a JetStream queue, run by
  two `candlegraph worker --concurrency 1` processes. walkforward_1_worker_s: the same with
  one of them stopped; walkforward_speedup = walkforward_1_worker_s / walkforward_s. The two
  results are checked equal.
- grid_trials and tpe_trials_to_1pct: `trend_pullback` (4 parameters) over a year of 1-hour
  candles. The grid (5 x 5 x 4 x 4 = 400 runs) is run in this process; then TPE searches the
  same space (ranges on the grid's steps, batches of 4, `strategies.search.ask`) with every
  trial's Sharpe the grid's run of those params, until a trial comes within 1 % of the grid's
  best Sharpe. Median over `--seeds` seeds (the range is printed as a comment).

Run: .venv/bin/python bench/research_speed.py [--seeds 10] [--skip-walkforward] [--skip-tpe]
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
import optuna
import polars as pl
from backtest_speed import EXCHANGE, START_NS, SYMBOL, random_walk
from tqdm import tqdm

from db.sqlite import SqliteStore
from server.backtest_queue import JetStreamQueue
from server.processes import free_port, nats_server_binary, stop_all, wait_for_port
from server.settings import PREFIX, Settings
from strategies.jobs import TERMINAL
from strategies.request import BacktestRequest, base_spec
from strategies.search import Dimension, FloatRange, IntRange, Search, Told, ask
from strategies.service import BacktestService, WalkForwardRequest
from strategies.sweep import plan_sweep, run_serially
from strategies.walkforward import WalkForwardResult

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
MINUTES_PER_YEAR = 525_600
HOURS_PER_YEAR = 8_760
ROOT = Path(__file__).resolve().parent.parent
WALK_GRID: dict[str, list[int | float | bool]] = {
    "fast": [5, 10, 20, 30, 40], "slow": [60, 120, 240, 480],
}
TPE_GRID: dict[str, list[int | float | bool]] = {
    "trend": [50, 100, 150, 200, 250], "period": [4, 8, 12, 16, 20],
    "oversold": [15.0, 25.0, 35.0, 45.0], "overbought": [55.0, 65.0, 75.0, 85.0],
}
TPE_SPACE: dict[str, Dimension] = {
    "trend": IntRange(50, 250, 50), "period": IntRange(4, 20, 4),
    "oversold": FloatRange(15.0, 45.0, 10.0), "overbought": FloatRange(55.0, 85.0, 10.0),
}


def request(strategy: str, timeframe: str, end_ns: int) -> BacktestRequest:
    return BacktestRequest(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=timeframe, strategy=strategy,
        start_ns=START_NS, end_ns=end_ns, starting_balance=1_000_000.0,
    )


async def walk_forward(service: BacktestService, store: SqliteStore, label: str
                       ) -> tuple[float, str]:
    """Seconds from submit to SUCCEEDED, and the stored result."""
    walk = WalkForwardRequest(folds=12, grid=WALK_GRID, train_fraction=0.25, rank_by="sharpe")
    started = time.perf_counter()
    record = await service.submit_walkforward(
        request("ema_cross", "1m", START_NS + MINUTES_PER_YEAR * MINUTE), walk
    )
    interactive = sys.stderr.isatty()
    bar = tqdm(total=100, desc=label, unit="%", disable=not interactive)
    shown = 0
    while True:
        found = store.backtest(record.id)
        assert found is not None
        done = int(found.progress * 100)
        if done > shown:
            bar.update(done - shown)
            if not interactive and done // 10 > shown // 10:
                print(f"# {label}: {done} %", file=sys.stderr, flush=True)
            shown = done
        if found.status in TERMINAL:
            break
        await asyncio.sleep(0.5)
    bar.close()
    elapsed = time.perf_counter() - started
    assert found.status == "SUCCEEDED", found.error
    assert found.metrics_json is not None
    return elapsed, found.metrics_json


async def measure_walk_forward(settings: Settings, workers: list[subprocess.Popen[bytes]]
                               ) -> dict[str, float]:
    import nats

    store = SqliteStore(settings.store_path)
    nc = await nats.connect(settings.nats_url)
    queue = JetStreamQueue(nc)
    await queue.start()
    service = BacktestService(store, queue, timeframes=("1m",), sweep_max_runs=1000)
    try:
        # Warm both workers (processes started, engine imported) with a small sweep.
        names: set[str] = set()
        while len(names) < 2:
            sweep = await service.submit_sweep(
                request("ema_cross", "1m", START_NS + 2000 * MINUTE), {"fast": [5, 10]},
                "sharpe",
            )
            while (found := store.backtest(sweep.id)) is not None and (
                found.status not in TERMINAL
            ):
                await asyncio.sleep(0.2)
            names |= {run.worker for run in store.backtests(sweep_id=sweep.id) if run.worker}
        two_s, two = await walk_forward(service, store, "walk-forward, 2 workers")
        stop_all(workers[1:], timeout_s=15)
        one_s, one = await walk_forward(service, store, "walk-forward, 1 worker")
        first = msgspec.json.decode(two, type=WalkForwardResult)
        second = msgspec.json.decode(one, type=WalkForwardResult)
        assert [f.params for f in first.folds] == [f.params for f in second.folds]
        assert first.metrics == second.metrics, "the two walk-forwards differ"
        print(f"# chosen params: {[f.params for f in first.folds]}")
        print(f"# efficiency: {first.efficiency}; stitched sharpe: "
              f"{first.metrics.sharpe if first.metrics else None}")
    finally:
        await nc.drain()
        store.close()
    return {"walkforward_s": two_s, "walkforward_1_worker_s": one_s,
            "walkforward_speedup": one_s / two_s}


def measure_tpe(candles: pl.DataFrame, seeds: int) -> dict[str, float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = base_spec(request("trend_pullback", "1h", START_NS + HOURS_PER_YEAR * HOUR),
                     timeframes=("1h",))
    plan = plan_sweep(base, TPE_GRID, "sharpe")
    started = time.perf_counter()
    serial = run_serially(candles, plan)
    grid_s = time.perf_counter() - started
    sharpe = {
        tuple(sorted(run.params.items())): run.metrics.sharpe for run in serial.ranking.runs
    }
    best = max(value for value in sharpe.values() if value is not None)
    target = best - 0.01 * abs(best)
    needed = []
    for seed in range(seeds):
        search = Search(method="TPE", trials=len(plan.runs), seed=seed, batch=4, space=TPE_SPACE)
        history: list[Told] = []
        reached = None
        while reached is None and len(history) < search.trials:
            for params in ask(search, history, maximize=True, count=search.batch,
                              accept=lambda _: True):
                value = sharpe[tuple(sorted({**base.params, **params}.items()))]
                history.append(Told(params, value))
                if reached is None and value is not None and value >= target:
                    reached = len(history)
        needed.append(reached if reached is not None else len(plan.runs) + 1)
    print(f"# tpe trials to 1 % over {seeds} seeds: {sorted(needed)}; grid best sharpe "
          f"{best:.4f}; grid run in {grid_s:.1f} s")
    return {"tpe_trials_to_1pct": statistics.median(needed), "grid_trials": len(plan.runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="TPE searches (median kept)")
    parser.add_argument("--skip-walkforward", action="store_true")
    parser.add_argument("--skip-tpe", action="store_true")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="candlegraph-bench-") as directory:
        root = Path(directory)
        port = free_port()
        settings = Settings(data_dir=root, nats_url=f"nats://127.0.0.1:{port}",
                            timeframes=("1m", "1h"), log_level="WARNING")
        store = SqliteStore(settings.store_path)
        store.upsert_candles(random_walk(HOURS_PER_YEAR, "1h", seed=4, sigma=0.006))
        hourly = store.candles_frame(EXCHANGE, SYMBOL, "1h")
        if not args.skip_walkforward:
            store.upsert_candles(random_walk(MINUTES_PER_YEAR, "1m", seed=3, sigma=0.0008))
        store.close()
        if not args.skip_tpe:
            figures |= measure_tpe(hourly, args.seeds)
        if not args.skip_walkforward:
            nats_proc = subprocess.Popen(
                [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js",
                 "-sd", str(root / "nats")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
            env.update(settings.to_env(), CANDLEGRAPH_WORKER_METRICS_PORT="0")
            workers: list[subprocess.Popen[bytes]] = []
            try:
                wait_for_port("127.0.0.1", port, timeout_s=10, proc=nats_proc)
                workers = [
                    subprocess.Popen(
                        [sys.executable, "-m", "server.cli", "worker", "--concurrency", "1"],
                        env=env, cwd=ROOT,
                    )
                    for _ in range(2)
                ]
                figures |= asyncio.run(measure_walk_forward(settings, workers))
            finally:
                stop_all(workers, timeout_s=15)
                stop_all([nats_proc], timeout_s=5)
    units = {"walkforward_speedup": "ratio", "tpe_trials_to_1pct": "trials",
             "grid_trials": "trials"}
    for name, value in figures.items():
        unit = units.get(name, "s")
        print(f"{name}: {value:.3f} {unit}" if unit != "trials" else f"{name}: {value:g} {unit}")
    print(f"# load average: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
