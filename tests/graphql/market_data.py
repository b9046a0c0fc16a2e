"""Test data for the query tests: candle walks, a batch aggregation to check resampling
against, and a GraphQL client over HTTP."""

from __future__ import annotations

import random
from collections.abc import Iterable

from graphql_schema.types import to_datetime
from market.messages import Candle
from market.timeframes import Timeframe

S = 1_000_000_000
MINUTE = 60 * S
#: 2023-11-14T22:14:00Z: on a minute, not on 5 minutes, so resampled first buckets are partial.
T0 = 1_700_000_040 * S


def walk(
    exchange: str, symbol: str, n: int, *, seed: int, start_ns: int = T0, step_ns: int = MINUTE,
    timeframe: str = "1m",
) -> list[Candle]:
    """`n` closed candles of a seeded random walk, one per step, oldest first."""
    rng = random.Random(seed)
    price = 100.0 + seed
    candles = []
    for i in range(n):
        open_ = price
        moves = [open_ * (1 + rng.gauss(0, 0.002)) for _ in range(4)]
        close = moves[-1]
        high = max(open_, *moves) * (1 + rng.random() * 0.001)
        low = min(open_, *moves) * (1 - rng.random() * 0.001)
        volume = round(rng.uniform(0.5, 20.0), 6) if i % 97 else 0.0
        trades = rng.randint(1, 40) if volume else 0
        vwap = (low + high + close) / 3 if volume else close
        candles.append(Candle(exchange, symbol, timeframe, start_ns + i * step_ns, open_, high,
                              low, close, volume, trades, vwap, True))
        price = close
    return candles


def aggregate(candles: Iterable[Candle], timeframe: str) -> list[Candle]:
    """Candles of `timeframe` from finer closed ones: the batch definition resampling follows."""
    width = Timeframe.parse(timeframe)
    buckets: dict[int, list[Candle]] = {}
    ordered = sorted(candles, key=lambda c: c.ts)
    for candle in ordered:
        buckets.setdefault(width.floor(candle.ts), []).append(candle)
    source_end = ordered[-1].ts + Timeframe.parse(ordered[-1].timeframe).ns
    result = []
    for bucket, group in buckets.items():
        volume = sum(c.volume for c in group)
        # A count or VWAP is known for the bucket only if it is for every candle in it.
        counts = [c.trades for c in group if c.trades is not None]
        trades = sum(counts) if len(counts) == len(group) else None
        vwap = None
        priced = [(c.vwap, c.volume) for c in group if c.vwap is not None]
        if len(priced) == len(group):
            notional = sum(price * size for price, size in priced)
            vwap = notional / volume if volume > 0 else group[-1].close
        result.append(Candle(
            group[0].exchange, group[0].symbol, timeframe, bucket, group[0].open,
            max(c.high for c in group), min(c.low for c in group), group[-1].close, volume,
            trades, vwap, all(c.closed for c in group) and bucket + width.ns <= source_end,
        ))
    return result


def iso(ts_ns: int) -> str:
    """The API's rendering of a bucket start."""
    return to_datetime(ts_ns).isoformat()
