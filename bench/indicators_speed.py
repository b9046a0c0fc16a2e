"""Time per candle of the default indicator set, over 100k synthetic 1-minute candles.

Prints `name: value unit` lines: `indicators_update_us` is `IndicatorSet.update` alone,
`indicators_update_values_us` adds `values()`, the flat dict a caller stores per candle.

    python bench/indicators_speed.py [--candles N]
"""

from __future__ import annotations

import argparse
import math
import random
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=100_000, help="candles to feed")
    args = parser.parse_args()
    candles = random_walk(args.candles)
    print(f"indicators_update_us: {per_candle_us(candles, with_values=False):.2f} us")
    print(f"indicators_update_values_us: {per_candle_us(candles, with_values=True):.2f} us")


if __name__ == "__main__":
    main()
