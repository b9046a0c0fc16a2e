"""Candles for backtest tests: a seeded random walk, reproducible to the bit."""

from __future__ import annotations

import numpy as np

from market.messages import Candle

MINUTE = 60_000_000_000
#: 2023-11-14T22:14:00Z, on a minute (and on an hour boundary's minute grid).
T0 = 1_700_000_040_000_000_000 // MINUTE * MINUTE


def minute_walk(
    count: int, *, symbol: str = "BTC-USDT", exchange: str = "sim", seed: int = 7,
    start_ns: int = T0, step_ns: int = MINUTE, timeframe: str = "1m",
) -> list[Candle]:
    """`count` closed candles, one per `step_ns`, whose closes walk 0.3 % a step around 100."""
    rng = np.random.default_rng(seed)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.003, count))), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    wicks = np.round(rng.uniform(0, 0.2, count), 2)
    return [
        Candle(exchange, symbol, timeframe, start_ns + i * step_ns, float(o),
               float(max(o, c) + w), float(min(o, c) - w), float(c), 1.5, 3, float(c), True)
        for i, (o, c, w) in enumerate(zip(opens, closes, wicks, strict=True))
    ]
