"""A file's columns to trade or candle rows: typed, in nanoseconds, each row good or bad.

`trade_rows` gives `TRADE_COLUMNS` and `candle_rows` `CANDLE_COLUMNS`, plus `bad` (whether
the row is bad); `trade_reasons` and `candle_reasons` say why, for the bad rows only (polars
evaluates every branch of a `when` on every row, so reasons are not made for good ones).
Rules:

- trades: a time (see `flows.files.timestamps`), a finite price > 0, a finite size >= 0; a
  Binance row's id and buyer-maker flag must read. The side is the taker's: `sell` when the
  buyer was the maker; from a `side` column `buy`/`b` and `sell`/`s` in lower, upper or
  title case, anything else `unknown`.
- trade ids: a canonical decimal integer (as `market.trade_batch` defines it) is kept as an
  integer; any other text in `sid`. A row without an id gets one made of its time, price,
  size and how many identical rows came before it in the file, so the same trade in two
  overlapping files has the same id.
- candles: a time at the start of a bucket of the file's timeframe, finite prices > 0 with
  low <= open, close <= high, a finite volume >= 0. A Binance kline's `count` is its trade
  count and its quote volume over its volume its VWAP (the close when the volume is zero, as
  for candles built from trades); a generic file's `trades` and `vwap` columns when it has
  them, else null.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from flows.files.layouts import BINANCE_KLINES
from flows.files.timestamps import ns_expr

TRADE_COLUMNS: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "price": pl.Float64(),
    "size": pl.Float64(),
    "side": pl.Int8(),
    "id": pl.Int64(),
    "sid": pl.String(),
}
CANDLE_COLUMNS: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "trades": pl.Int64(),
    "vwap": pl.Float64(),
}

_CANONICAL_ID = r"^(0|[1-9][0-9]{0,17})$"
#: Taker sides as files spell them.
_BUY = ["buy", "BUY", "Buy", "b", "B"]
_SELL = ["sell", "SELL", "Sell", "s", "S"]


def _number(frame: pl.DataFrame, column: str) -> pl.Expr:
    col = pl.col(column)
    if frame.schema[column] == pl.String:
        return col.str.strip_chars().cast(pl.Float64, strict=False)
    return col.cast(pl.Float64, strict=False)


def _bad_number(name: str, value: pl.Expr, *, positive: bool) -> tuple[pl.Expr, pl.Expr]:
    """(condition, reason) pairs for a number that is missing, not finite, or out of range."""
    limit = (value <= 0) if positive else (value < 0)
    bound = "> 0" if positive else ">= 0"
    return (
        value.is_null() | ~value.is_finite() | limit,
        pl.when(value.is_null()).then(pl.lit(f"{name} is missing or not a number"))
        .otherwise(pl.format(f"{name} must be finite and {bound}, got {{}}", value)),
    )


Checks = list[tuple[pl.Expr, pl.Expr]]


def _bad(checks: Checks) -> pl.Expr:
    # A condition is null only where the value it tests is, which another check flags.
    return pl.any_horizontal([condition for condition, _ in checks]).fill_null(True)


def _reasons(checks: Checks) -> pl.Expr:
    """The reason of the first check that fails (a null condition does not)."""
    return pl.coalesce(
        *(pl.when(condition).then(reason) for condition, reason in checks),
        pl.lit("a field does not read"),
    )


def trade_rows(
    frame: pl.DataFrame, fields: Mapping[str, str], *, max_ns: int
) -> pl.DataFrame:
    """`TRADE_COLUMNS` and `bad` for the rows of `frame` (see the module docstring); `max_ns`
    is the latest time accepted. Ids are not yet made up for rows without one."""
    columns, checks = _trades(frame, fields, max_ns)
    # Lazily, so polars computes each expression the columns and checks share (the time) once.
    return frame.lazy().select(*columns, _bad(checks).alias("bad")).collect()


def trade_reasons(frame: pl.DataFrame, fields: Mapping[str, str], *, max_ns: int) -> list[str]:
    """Why each row of `frame` (bad rows, as `trade_rows` read them) is bad."""
    _, checks = _trades(frame, fields, max_ns)
    return frame.select(_reasons(checks)).to_series().to_list()


def _trades(
    frame: pl.DataFrame, fields: Mapping[str, str], max_ns: int
) -> tuple[list[pl.Expr], Checks]:
    ts = ns_expr(fields["ts"], frame.schema[fields["ts"]])
    price = _number(frame, fields["price"])
    size = _number(frame, fields["size"])
    checks = [
        (ts.is_null(), pl.lit("the time is missing or is not a time")),
        (ts > max_ns, pl.format("the time {} is in the future", ts)),
        _bad_number("the price", price, positive=True),
        _bad_number("the size", size, positive=False),
    ]
    if "buyer_maker" in fields:
        maker = pl.col(fields["buyer_maker"])
        if frame.schema[fields["buyer_maker"]] == pl.String:
            maker = maker.str.to_lowercase().replace_strict(
                {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
            )
        checks.append((maker.is_null(), pl.lit("the buyer-maker flag is not true or false")))
        side = pl.when(maker).then(1).otherwise(0)
    elif "side" in fields:
        # Two set lookups a row: half the time of one `replace_strict` mapping, and a tenth
        # on a categorical column (Parquet's text sides are read as one), looked up as is.
        spelled = pl.col(fields["side"])
        if frame.schema[fields["side"]] != pl.Categorical:
            spelled = spelled.cast(pl.String)
        side = pl.when(spelled.is_in(_BUY)).then(0).when(spelled.is_in(_SELL)).then(1).otherwise(2)
    else:
        side = pl.lit(2)
    id_column = fields.get("id")
    if id_column is None:
        ids, sids = pl.lit(-1, pl.Int64), pl.lit(None, pl.String)
    elif frame.schema[id_column].is_integer():
        ids, sids = pl.col(id_column).cast(pl.Int64), pl.lit(None, pl.String)
        checks.append((ids.is_null() | (ids < 0), pl.lit("the id is not an integer >= 0")))
    else:
        text = pl.col(id_column).cast(pl.String).str.strip_chars()
        canonical = text.str.contains(_CANONICAL_ID).fill_null(False)
        ids = pl.when(canonical).then(text.cast(pl.Int64, strict=False)).otherwise(-1)
        sids = pl.when(canonical | (text.fill_null("") == "")).then(None).otherwise(text)
    columns = [
        ts.alias("ts"),
        price.alias("price"),
        size.alias("size"),
        side.cast(pl.Int8).alias("side"),
        ids.alias("id"),
        sids.alias("sid"),
    ]
    return columns, checks


def candle_rows(
    frame: pl.DataFrame, fields: Mapping[str, str], fmt_name: str, *, width_ns: int,
    max_ns: int,
) -> pl.DataFrame:
    """`CANDLE_COLUMNS` and `bad` for the rows of `frame`, candles `width_ns` wide."""
    columns, checks = _candles(frame, fields, fmt_name, width_ns, max_ns)
    return frame.lazy().select(*columns, _bad(checks).alias("bad")).collect()


def candle_reasons(
    frame: pl.DataFrame, fields: Mapping[str, str], fmt_name: str, *, width_ns: int,
    max_ns: int,
) -> list[str]:
    """Why each row of `frame` (bad rows, as `candle_rows` read them) is bad."""
    _, checks = _candles(frame, fields, fmt_name, width_ns, max_ns)
    return frame.select(_reasons(checks)).to_series().to_list()


def _candles(
    frame: pl.DataFrame, fields: Mapping[str, str], fmt_name: str, width_ns: int, max_ns: int,
) -> tuple[list[pl.Expr], Checks]:
    ts = ns_expr(fields["ts"], frame.schema[fields["ts"]])
    o, h, lo, c, v = (_number(frame, fields[f]) for f in ("open", "high", "low", "close",
                                                          "volume"))
    checks = [
        (ts.is_null(), pl.lit("the time is missing or is not a time")),
        (ts > max_ns, pl.format("the time {} is in the future", ts)),
        (ts % width_ns != 0, pl.format("the time {} does not start a bucket (buckets are aligned"
                                       " to the Unix epoch)", ts)),
        *(_bad_number(name, e, positive=True)
          for name, e in (("open", o), ("high", h), ("low", lo), ("close", c))),
        _bad_number("the volume", v, positive=False),
        (h < lo, pl.lit("high is below low")),
        ((o < lo) | (o > h) | (c < lo) | (c > h), pl.lit("open or close is outside low..high")),
    ]
    trades: pl.Expr = pl.lit(None, pl.Int64)
    vwap: pl.Expr = pl.lit(None, pl.Float64)
    if fmt_name == BINANCE_KLINES:
        close_ts = ns_expr(fields["close_time"], frame.schema[fields["close_time"]])
        # close_time is open_time + width - 1 unit (a millisecond, or a microsecond).
        gap = close_ts - ts
        checks.append((
            ((gap < width_ns - 1_000_000) | (gap >= width_ns)).fill_null(True),
            pl.lit("its close time does not end a candle of the file's timeframe"),
        ))
        trades = pl.col(fields["trades"]).cast(pl.Int64, strict=False)
        quote = _number(frame, fields["quote_volume"])
        checks.append((trades.is_null() | (trades < 0), pl.lit("the trade count is not >= 0")))
        checks.append((quote.is_null() | ~quote.is_finite(), pl.lit("the quote volume is bad")))
        vwap = pl.when(v > 0).then(quote / v).otherwise(c)
    else:
        if "trades" in fields:
            trades = pl.col(fields["trades"]).cast(pl.Int64, strict=False)
            checks.append((trades < 0, pl.lit("the trade count is below 0")))
        if "vwap" in fields:
            vwap = _number(frame, fields["vwap"])
            checks.append((~vwap.is_finite(), pl.lit("the vwap is not finite")))
    columns = [
        ts.alias("ts"), o.alias("open"), h.alias("high"), lo.alias("low"), c.alias("close"),
        v.alias("volume"), trades.alias("trades"), vwap.alias("vwap"),
    ]
    return columns, checks
