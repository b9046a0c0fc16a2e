"""Time per candle of the default indicator set, over 100k synthetic 1-minute candles.

Prints `name: value unit` lines: `indicators_update_us` is `IndicatorSet.update` alone (one
call into the compiled engine per candle), `indicators_update_values_us` adds `values()`, the
flat dict a caller stores per candle; `indicators_fold_us` is `IndicatorBook.fold` of all the
candles of one series in one call (what history and imports do), every output of every
candle in one array; `indicators_book_update_us` is `IndicatorBook.update` of batches of 300
candles of 100 series, the flow's shape, with its dicts of numbers.

    python bench/indicators_speed.py [--candles N]
"""

from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np

from market.candle_columns import CandleColumns
from market.indicator_book import IndicatorBook
from market.indicators import DEFAULT_INDICATORS, IndicatorSet

Candle = tuple[int, float, float, float, float, float]


def random_walk(count: int, seed: int = 1) -> list[Candle]:
    """1-minute OHLCV candles from a seeded random walk, starting 2024-01-01 00:00 UTC."""
    rng = random.Random(seed)
    start_ns, minute_ns = 1_704_067_200 * 10**9, 60 * 10**9
    candles: list[Candle] = []
    prev = 100.0
    for i in range(count):
        close = round(prev * math.exp(rng.gauss(0.0, 0.0008)), 2)
        high = max(prev, close) + round(abs(rng.gauss(0.0, 0.04)), 2)
        low = min(prev, close) - round(abs(rng.gauss(0.0, 0.04)), 2)
        candles.append((start_ns + i * minute_ns, prev, high, low, close, rng.lognormvariate(2, 1)))
        prev = close
    return candles


def per_candle_us(candles: list[Candle], with_values: bool) -> float:
    """Microseconds per candle to update a fresh default set (and read its values)."""
    indicators = IndicatorSet(DEFAULT_INDICATORS)
    update, values = indicators.update, indicators.values
    started = time.perf_counter()
    if with_values:
        for candle in candles:
            update(*candle)
            values()
    else:
        for candle in candles:
            update(*candle)
    return (time.perf_counter() - started) / len(candles) * 1e6


def columns(candles: list[Candle], series: int) -> CandleColumns:
    """The candles as columns, spread round-robin over `series` markets (each its own walk
    in time order: candle i goes to market i % series)."""
    n = len(candles)
    ts, _, high, low, close, volume = (np.array(c) for c in zip(*candles, strict=True))
    market = np.arange(n, dtype=np.int64) % series
    markets = [("bench", f"M{i}") for i in range(series)]
    return CandleColumns(markets, ["1m"], market, np.zeros(n, np.int64), ts, close, high, low,
                         close, volume, np.ones(n, np.int64), close, np.ones(n, np.bool_))


def book_us(candles: list[Candle], series: int, batch: int, dicts: bool) -> float:
    """Microseconds per candle through a fresh `IndicatorBook` (compiled code loaded first),
    `batch` candles a call."""
    frame = columns(candles, series)
    IndicatorBook(DEFAULT_INDICATORS).fold(frame.take(np.arange(min(series, len(frame)))))
    book = IndicatorBook(DEFAULT_INDICATORS)
    call = book.update if dicts else book.fold
    parts = [frame.take(slice(i, i + batch)) for i in range(0, len(frame), batch)]
    started = time.perf_counter()
    for part in parts:
        call(part)
    return (time.perf_counter() - started) / len(candles) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=100_000, help="candles to feed")
    args = parser.parse_args()
    candles = random_walk(args.candles)
    print(f"indicators_update_us: {per_candle_us(candles, with_values=False):.2f} us")
    print(f"indicators_update_values_us: {per_candle_us(candles, with_values=True):.2f} us")
    print(f"indicators_fold_us: {book_us(candles, 1, len(candles), dicts=False):.3f} us")
    print(f"indicators_book_update_us: {book_us(candles, 100, 300, dicts=True):.2f} us")


if __name__ == "__main__":
    main()
