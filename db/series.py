"""Stored series and the rules both stores derive from them: summaries and resampled buckets.

A series is one (exchange, symbol, timeframe). Its extent (first and latest candle start, and
the latest candle's close) is all a store needs to answer `symbol_summaries`, and to decide
whether a resampled bucket is closed. The rules live here once so the stores cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from db.candle_store import SymbolSummary
from market.timeframes import Timeframe


class SeriesExtent(NamedTuple):
    """First and latest candle start of one stored series, and the latest candle's close."""

    exchange: str
    symbol: str
    timeframe: str
    first_ns: int
    last_ns: int
    last_close: float


def summaries(extents: Iterable[SeriesExtent]) -> list[SymbolSummary]:
    """One summary per market, sorted by exchange, symbol.

    `last_price` is the close of the candle that ends last across the market's timeframes (a
    finer one on a tie): with only closed candles stored, that candle holds the latest trade.
    """
    best: dict[tuple[str, str], tuple[int, int, int, float]] = {}
    for e in extents:
        key = (e.exchange, e.symbol)
        end = e.last_ns + Timeframe.parse(e.timeframe).ns
        known = best.get(key)
        if known is None:
            best[key] = (e.first_ns, e.last_ns, end, e.last_close)
            continue
        first, last, known_end, price = known
        if (end, e.last_ns) > (known_end, last):
            known_end, price = end, e.last_close
        best[key] = (min(first, e.first_ns), max(last, e.last_ns), known_end, price)
    return [
        SymbolSummary(exchange, symbol, first, last, price)
        for (exchange, symbol), (first, last, _, price) in sorted(best.items())
    ]


def resample_steps(source_timeframe: str, timeframe: str) -> tuple[int, int]:
    """The source and target widths in ns; `ValueError` unless the source divides the target."""
    source, target = Timeframe.parse(source_timeframe), Timeframe.parse(timeframe)
    if not source.divides(target):
        raise ValueError(
            f"cannot resample {source_timeframe} candles into {timeframe}: "
            f"{timeframe} is not a whole number of {source_timeframe} buckets"
        )
    return source.ns, target.ns


def source_range(start_ns: int | None, end_ns: int | None, step: int) -> tuple[int, int]:
    """The source candle starts whose target bucket starts within [start_ns, end_ns).

    A bucket starts at or after `start_ns` exactly when its source candles do at or after
    `start_ns` rounded up to the bucket width; the same holds for `end_ns`.
    """
    lo = -(2**62) if start_ns is None else -(-start_ns // step) * step
    hi = 2**62 if end_ns is None else -(-end_ns // step) * step
    return lo, hi


def resample_window(
    lo: int, hi: int, first_ns: int, last_ns: int, step: int, limit: int, from_start: bool
) -> tuple[int, int]:
    """The part of the source range [lo, hi) that `limit` buckets cover if the series is dense.

    Reading only that part is a fast first try; when gaps leave fewer than `limit` buckets in
    it, the caller reads the whole range again.
    """
    if from_start:
        start = max(lo, first_ns - first_ns % step)
        return lo, min(hi, start + limit * step)
    end = min(hi - 1, last_ns)
    return max(lo, end - end % step - (limit - 1) * step), hi


def bucket_vwap(notional: float | None, volume: float, close: float) -> float | None:
    """A resampled bucket's VWAP from Σ vwap·volume of its source candles: None when a source
    candle has no VWAP (`notional` None), the close when the volume is zero."""
    if notional is None:
        return None
    return notional / volume if volume > 0 else close


def bucket_closed(bucket_ns: int, step: int, all_closed: bool, source_end_ns: int) -> bool:
    """A resampled bucket is closed when its source candles all are and the source series
    reaches the bucket's end (`source_end_ns`: the end of the latest stored source candle)."""
    return all_closed and bucket_ns + step <= source_end_ns
