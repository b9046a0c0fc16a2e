"""Table rows to the store's values and back: backtest records and wide indicator frames.

Both stores read rows in the same column order and share these conversions, so a record or an
indicator frame reads back identically from either. The embedded store keeps the values of one
(series, ts) written live as one JSON object: `indicator_objects` builds them,
`indicator_object_frame` reads them back (history's blocks are `db.indicator_blocks`).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec
import polars as pl

from db.backtest_store import BacktestRecord
from db.indicator_store import IndicatorPoint, IndicatorValues
from db.store import StoreError

#: Columns of the `backtests` table, in the order of `BacktestRecord`'s fields.
BACKTEST_COLUMNS: tuple[str, ...] = BacktestRecord.__struct_fields__


def backtest_row(record: BacktestRecord) -> tuple[object, ...]:
    """The record as a row in `BACKTEST_COLUMNS` order."""
    return msgspec.structs.astuple(record)


def backtest_record(row: Sequence[object]) -> BacktestRecord:
    """A row in `BACKTEST_COLUMNS` order as a validated record."""
    values = dict(zip(BACKTEST_COLUMNS, row, strict=True))
    if values["attempt"] is None:  # a row written before the column existed (QuestDB)
        values["attempt"] = 0
    try:
        return msgspec.convert(values, BacktestRecord)
    except msgspec.ValidationError as error:
        raise StoreError(f"stored backtest {row[0]!r} is not a valid record: {error}") from error


def indicator_frame(
    rows: Sequence[tuple[int, str, float | None]], names: Sequence[str]
) -> pl.DataFrame:
    """Long (ts, name, value) rows as one row per ts, oldest first: `ts` then one Float64 column
    per name in `names` order, null where that name has no value at that ts."""
    long = pl.DataFrame(
        rows, schema={"ts": pl.Int64(), "name": pl.String(), "value": pl.Float64()}, orient="row"
    )
    wide = pl.DataFrame(schema={"ts": pl.Int64()})
    if long.height:
        wide = long.pivot(on="name", index="ts", values="value", aggregate_function="last")
    return wide.select(
        pl.col("ts"),
        *[
            (pl.col(n) if n in wide.columns else pl.lit(None)).cast(pl.Float64()).alias(n)
            for n in names
        ],
    ).sort("ts")


class IndicatorObject(NamedTuple):
    """The values of one series at one ts as a JSON object, e.g. `{"sma_20":101.25}`."""

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    names: tuple[str, ...]
    values_json: str


_KEY = operator.itemgetter(0, 1, 2, 3)
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(dict[str, float | None])


def indicator_values(points: Iterable[IndicatorPoint]) -> list[IndicatorValues]:
    """One row per run of consecutive points with the same (exchange, symbol, timeframe, ts),
    so sorted points give one per key; the last value of a name in a run wins."""
    return [
        IndicatorValues(exchange, symbol, timeframe, ts, {point[4]: point[5] for point in run})
        for (exchange, symbol, timeframe, ts), run in itertools.groupby(points, _KEY)
    ]


def indicator_objects(rows: Iterable[IndicatorValues]) -> list[IndicatorObject]:
    """Each row's values as one JSON object.

    Floats are written in their shortest form that reads back to the same double. NaN and
    infinities are written as `null`, which the store reads as no value.
    """
    encode = _ENCODER.encode
    return [
        IndicatorObject(exchange, symbol, timeframe, ts, tuple(values), encode(values).decode())
        for exchange, symbol, timeframe, ts, values in rows
    ]


def decode_objects(texts: Iterable[str]) -> list[dict[str, float | None]]:
    """Stored JSON objects of values as dicts (`null` as None)."""
    try:
        return [_DECODER.decode(text) for text in texts]
    except msgspec.DecodeError as error:
        message = f"stored indicator values are not a JSON object of numbers: {error}"
        raise StoreError(message) from error


def indicator_object_frame(rows: Sequence[tuple[int, str]], names: Sequence[str]) -> pl.DataFrame:
    """(ts, JSON object) rows, oldest first, as the frame of `indicator_frame`."""
    objects = decode_objects(row[1] for row in rows)
    columns: dict[str, list] = {"ts": [row[0] for row in rows]}
    for name in names:
        columns[name] = [values.get(name) for values in objects]
    return pl.DataFrame(columns, schema={"ts": pl.Int64(), **dict.fromkeys(names, pl.Float64())})
