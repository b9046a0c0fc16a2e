"""How fast a backtest runs, from the store to the result. Prints `name: value unit` lines.

A seeded random walk of one year of 1-minute candles (525,600) and five years of 1-hour
candles (43,800) is written into an embedded `SqliteStore` in a temporary directory and read
back. Each engine runs in a fresh spawned process (NautilusTrader's logging state is per
process), one after another so they do not compete for the cores.

- backtest_load_s / _convert_s / _engine_s / _total_s: EMA cross 50/200, fixed quantity, on the
  1-minute year: store to polars, polars to bars, engine (build + run), and everything. Best of
  three runs (the one with the lowest total), interleaved with the floor's.
- engine_floor_s: the same bars with a strategy that subscribes and does nothing (best of
  three).
- backtest_vs_floor: engine_floor_s / backtest_engine_s (1.0 = the strategy costs nothing).
- backtest_1h_5y_s: the same backtest on the 1-hour five years, total.
- convert_from_raw_arrays_s / convert_bar_loop_s: the year's candles to bars with
  `Bar.from_raw_arrays_to_list` (what the runner uses) and with a loop building each `Bar`
  from `Price`s and a `Quantity` (checked equal).
- Sweeps are measured through the job queue and real worker processes, the one way they run:
  bench/backtest_queue.py.
- profile_before_bars_per_s / profile_after_bars_per_s and the frames each spends its time in
  (`# ` lines): NautilusTrader as its examples set it up against our setup, sampled by py-spy
  on 60,000 1-minute bars with EMA cross 10/30 (see bench/backtest_profile.py).

Run: .venv/bin/python bench/backtest_speed.py [--profile-bars N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
from backtest_profile import profile, write_candles
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from db.sqlite import SqliteStore
from market.messages import Candle
from market.timeframes import Timeframe
from strategies.bars import candles_to_bars
from strategies.runner import prepare_market, run_prepared, strategy_for
from strategies.spec import BacktestSpec, FixedQuantity

EXCHANGE = "bench"
SYMBOL = "BTC-USDT"
START_NS = 1_672_531_200_000_000_000  # 2023-01-01T00:00:00Z
MINUTES_PER_YEAR = 525_600
HOURS_PER_5_YEARS = 43_800
EMA_PARAMS: dict[str, int | float | bool] = {"fast": 50, "slow": 200}
SWEEP_GRID: dict[str, list[int | float | bool]] = {
    "fast": [5, 10, 20, 30, 50],
    "slow": [60, 100, 150, 200],
}


class IdleConfig(StrategyConfig, frozen=True, kw_only=True):
    bar_type: BarType


class Idle(Strategy):
    """Receives every bar and does nothing: the engine's own cost."""

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        pass


def random_walk(
    count: int, timeframe: str, *, seed: int, sigma: float, start_price: float = 30_000.0
) -> list[Candle]:
    """Seeded candles whose open is the previous close, prices in cents, volumes to 1e-4."""
    rng = np.random.default_rng(seed)
    width = Timeframe.parse(timeframe).ns
    closes = np.round(start_price * np.exp(np.cumsum(rng.normal(0.0, sigma, count))), 2)
    opens = np.concatenate([[start_price], closes[:-1]])
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, count)))
    highs = np.round(np.maximum(opens, closes) * (1.0 + wick[0]), 2)
    lows = np.round(np.minimum(opens, closes) * (1.0 - wick[1]), 2)
    volumes = np.round(rng.uniform(0.01, 20.0, count), 4)
    return [
        Candle(EXCHANGE, SYMBOL, timeframe, START_NS + i * width, o, h, lo, c, v, 1, c, True)
        for i, (o, h, lo, c, v) in enumerate(
            zip(
                opens.tolist(),
                highs.tolist(),
                lows.tolist(),
                closes.tolist(),
                volumes.tolist(),
                strict=True,
            )
        )
    ]


def spec_for(timeframe: str, params: dict[str, int | float | bool]) -> BacktestSpec:
    return BacktestSpec(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=timeframe,
        strategy="ema_cross",
        params=params,
        # Deep enough pockets that no entry is skipped for want of cash.
        starting_balance=1_000_000.0,
        sizing=FixedQuantity(0.1),
    )


def timed_backtest(store_path: Path, timeframe: str, idle: bool) -> dict[str, float]:
    """One backtest from the store, timed by stage (runs in a fresh worker process)."""
    started = time.perf_counter()
    store = SqliteStore(store_path)
    candles = store.candles_frame(EXCHANGE, SYMBOL, timeframe, 0, 2**62)
    store.close()
    load_s = time.perf_counter() - started
    spec = spec_for(timeframe, EMA_PARAMS)
    market = prepare_market(candles, spec)
    strategy: Strategy = (
        Idle(IdleConfig(bar_type=market.bar_type)) if idle else strategy_for(market, spec)
    )
    result = run_prepared(market, spec, strategy)
    return {
        "load_s": load_s,
        "convert_s": market.convert_s,
        "engine_s": result.timings.engine_s,
        "results_s": result.timings.results_s,
        "total_s": time.perf_counter() - started,
        "bars": float(result.metrics.bar_count),
        "trades": float(result.metrics.trade_count),
    }


def conversion_times(candles: pl.DataFrame) -> dict[str, float]:
    """Seconds to turn the candles into bars, our way and by building each `Bar` in a loop;
    both must give the same bars."""
    market = prepare_market(candles, spec_for("1m", EMA_PARAMS))
    price_precision = market.instrument.price_precision
    size_precision = market.instrument.size_precision
    started = time.perf_counter()
    ours = candles_to_bars(candles, market.bar_type, timeframe_ns=market.timeframe_ns,
                           price_precision=price_precision, size_precision=size_precision)
    arrays_s = time.perf_counter() - started
    started = time.perf_counter()
    closes_at = (candles["ts"] + market.timeframe_ns).to_list()
    looped = [
        Bar(market.bar_type, Price(o, price_precision), Price(h, price_precision),
            Price(lo, price_precision), Price(c, price_precision), Quantity(v, size_precision),
            ts, ts)
        for o, h, lo, c, v, ts in zip(
            candles["open"].to_list(), candles["high"].to_list(), candles["low"].to_list(),
            candles["close"].to_list(), candles["volume"].to_list(), closes_at, strict=True,
        )
    ]
    loop_s = time.perf_counter() - started
    if ours != looped:
        raise AssertionError("the two conversions disagree")
    return {"convert_from_raw_arrays_s": arrays_s, "convert_bar_loop_s": loop_s}


def in_fresh_process(store_path: Path, timeframe: str, idle: bool) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(timed_backtest, store_path, timeframe, idle).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile-bars", type=int, default=60_000,
                        help="1-minute bars for the before/after profile (0: skip it)")
    profile_bars = parser.parse_args().profile_bars
    with tempfile.TemporaryDirectory(prefix="candlegraph-bench-") as directory:
        store_path = Path(directory) / "candles.db"
        store = SqliteStore(store_path)
        store.upsert_candles(random_walk(MINUTES_PER_YEAR, "1m", seed=1, sigma=0.0008))
        store.upsert_candles(random_walk(HOURS_PER_5_YEARS, "1h", seed=2, sigma=0.006))

        # Best of three, interleaved: the machine is shared, and the minimum is the run least
        # disturbed by others.
        runs = [in_fresh_process(store_path, "1m", idle=idle) for idle in (False, True) * 3]
        ema = min(runs[0::2], key=lambda run: run["total_s"])
        floor = min(runs[1::2], key=lambda run: run["engine_s"])
        hourly = in_fresh_process(store_path, "1h", idle=False)
        print(f"backtest_bars: {ema['bars']:.0f} bars")
        print(f"backtest_trades: {ema['trades']:.0f} trades")
        print(f"backtest_load_s: {ema['load_s']:.3f} s")
        print(f"backtest_convert_s: {ema['convert_s']:.3f} s")
        print(f"backtest_engine_s: {ema['engine_s']:.3f} s")
        print(f"backtest_results_s: {ema['results_s']:.3f} s")
        print(f"backtest_total_s: {ema['total_s']:.3f} s")
        print(f"engine_floor_s: {floor['engine_s']:.3f} s")
        print(f"backtest_vs_floor: {floor['engine_s'] / ema['engine_s']:.3f} ratio")
        print(f"backtest_1h_5y_s: {hourly['total_s']:.3f} s")

        minutes = store.candles_frame(EXCHANGE, SYMBOL, "1m", 0, 2**62)
        for name, seconds in conversion_times(minutes).items():
            print(f"{name}: {seconds:.3f} s")

        store.close()

        if profile_bars:
            # Where the time goes, as NautilusTrader's examples set it up and as we do.
            profile_store = Path(directory) / "profile.db"
            write_candles(profile_store, profile_bars)
            for line in profile(profile_store):
                print(line, flush=True)


if __name__ == "__main__":
    main()
