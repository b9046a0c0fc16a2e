"""File timestamps to integer nanoseconds since the epoch, UTC.

- Integers are seconds, milliseconds, microseconds or nanoseconds by their size: below 1e11
  seconds, below 1e14 milliseconds, below 1e17 microseconds, nanoseconds above. For times
  from 1973 to 5138 each unit has its own range, so the size alone tells the unit, value by
  value: Binance spot files switch from milliseconds to microseconds on 2025-01-01, and both
  read the same way.
- Decimals are the same units with a fraction, rounded to the nearest nanosecond.
- Text is an ISO-8601 date and time; one without an offset is UTC.
- Parquet datetime columns are UTC when they carry no time zone.

A time that is negative, unreadable or past 2262 (beyond int64 nanoseconds) is null, and its
row is bad.
"""

from __future__ import annotations

import polars as pl

_MAX_NS = 2**63 - 1


def ns_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    """An expression turning `column` (of `dtype`) into Int64 nanoseconds, null where the
    value is not a time."""
    col = pl.col(column)
    if dtype == pl.String:
        return col.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False).dt.epoch("ns")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            col = col.dt.replace_time_zone("UTC")
        return col.dt.cast_time_unit("ns").dt.epoch("ns")
    if dtype == pl.Date:
        return col.cast(pl.Datetime("ns")).dt.epoch("ns")
    if dtype.is_integer():
        value = col.cast(pl.Int64)
        scale = _scale(value)
        fits = value <= pl.lit(_MAX_NS) // scale
        return pl.when((value >= 0) & fits).then(value * scale).otherwise(None)
    if dtype.is_float():
        value = col.cast(pl.Float64)
        scaled = (value * _scale(value).cast(pl.Float64)).round(0)
        ok = (value >= 0) & value.is_finite() & (scaled < float(_MAX_NS))
        return pl.when(ok).then(scaled.cast(pl.Int64, strict=False)).otherwise(None)
    return pl.lit(None, pl.Int64)


def _scale(value: pl.Expr) -> pl.Expr:
    return (
        pl.when(value < 10**11).then(pl.lit(10**9, pl.Int64))
        .when(value < 10**14).then(pl.lit(10**6, pl.Int64))
        .when(value < 10**17).then(pl.lit(10**3, pl.Int64))
        .otherwise(pl.lit(1, pl.Int64))
    )
