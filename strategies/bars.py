"""Candles to NautilusTrader bars, stamped at their close so no strategy sees a bar early.

Stored candles are stamped at their bucket start. The engine hands a bar to strategies (and
fills orders against it) at its `ts_init`, so a bar stamped at its start would be seen one
period before it ends: look-ahead. Bars are therefore stamped ts_event = ts_init = start +
timeframe, the instant the bucket closes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from nautilus_trader.model.data import Bar, BarType

from market.arrays import Floats
from strategies.errors import CandleDataError

REQUIRED_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def bar_type_for(instrument_id: str, timeframe_ns: int) -> BarType:
    """`BTC-USDT.SIM-1-MINUTE-LAST-EXTERNAL` and the like.

    EXTERNAL because the matching engine ignores INTERNAL bars, LAST so that it derives trade
    ticks from each bar and fills orders at those prices.
    """
    return BarType.from_str(f"{instrument_id}-{_step(timeframe_ns)}-LAST-EXTERNAL")


def check_candles(candles: pl.DataFrame, timeframe_ns: int) -> None:
    """Raise `CandleDataError` unless the candles can be run as bars of `timeframe_ns`."""
    missing = [name for name in REQUIRED_COLUMNS if name not in candles.columns]
    if missing:
        raise CandleDataError(
            f"candles: expected columns {', '.join(REQUIRED_COLUMNS)}, missing {missing}"
        )
    if candles.height == 0:
        raise CandleDataError("candles: expected at least one candle, got none")
    for name in REQUIRED_COLUMNS:
        dtype = candles.schema[name]
        if not dtype.is_numeric():
            raise CandleDataError(f"candles column {name!r}: expected numbers, got {dtype}")
    prices = [pl.col(name) for name in ("open", "high", "low", "close")]
    problems = candles.select(
        unsorted=(pl.col("ts").diff() <= 0).any(),
        misaligned=(pl.col("ts") % timeframe_ns != 0).any(),
        nulls=pl.any_horizontal(pl.col(REQUIRED_COLUMNS).is_null()).any(),
        bad_price=pl.any_horizontal([~(p.is_finite() & (p > 0)) for p in prices]).any(),
        bad_range=(
            (pl.col("high") < pl.max_horizontal("open", "close", "low"))
            | (pl.col("low") > pl.min_horizontal("open", "close", "high"))
        ).any(),
        bad_volume=(~(pl.col("volume").is_finite() & (pl.col("volume") >= 0))).any(),
    ).row(0, named=True)
    reasons = {
        "unsorted": "ts strictly increasing (one candle per bucket, oldest first)",
        "misaligned": f"ts on bucket starts, whole multiples of {timeframe_ns} ns",
        "nulls": "no nulls",
        "bad_price": "finite prices > 0",
        "bad_range": "low <= open, close <= high",
        "bad_volume": "finite volumes >= 0",
    }
    for problem, expected in reasons.items():
        if problems[problem]:
            raise CandleDataError(f"candles: expected {expected}, and some are not")


def candles_to_bars(
    candles: pl.DataFrame,
    bar_type: BarType,
    *,
    timeframe_ns: int,
    price_precision: int,
    size_precision: int,
) -> list[Bar]:
    """One bar per candle, ts_event = ts_init = bucket start + timeframe (the close)."""
    closes_at = (candles["ts"].cast(pl.Int64) + timeframe_ns).to_numpy().astype(np.uint64)
    bars: list[Bar] = Bar.from_raw_arrays_to_list(
        bar_type,
        price_precision,
        size_precision,
        _writable(candles["open"]),
        _writable(candles["high"]),
        _writable(candles["low"]),
        _writable(candles["close"]),
        _writable(candles["volume"]),
        closes_at,
        closes_at.copy(),
    )
    return bars


def _writable(column: pl.Series) -> Floats:
    # The Cython signature takes `double[:]`, which refuses read-only buffers, and polars'
    # zero-copy views are read-only.
    return column.cast(pl.Float64).to_numpy(writable=True)


def _step(timeframe_ns: int) -> str:
    for unit, width in (("DAY", 86_400), ("HOUR", 3_600), ("MINUTE", 60), ("SECOND", 1)):
        width_ns = width * 1_000_000_000
        if timeframe_ns % width_ns == 0:
            return f"{timeframe_ns // width_ns}-{unit}"
    raise CandleDataError(f"timeframe: expected whole seconds, got {timeframe_ns} ns")
