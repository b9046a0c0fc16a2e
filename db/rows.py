"""Table rows to the store's values and back: backtest records and wide indicator frames.

Both stores read rows in the same column order and share these conversions, so a record or an
indicator frame reads back identically from either.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import polars as pl

from db.store import BacktestRecord, StoreError

#: Columns of the `backtests` table, in the order of `BacktestRecord`'s fields.
BACKTEST_COLUMNS: tuple[str, ...] = BacktestRecord.__struct_fields__


def backtest_row(record: BacktestRecord) -> tuple[object, ...]:
    """The record as a row in `BACKTEST_COLUMNS` order."""
    return msgspec.structs.astuple(record)


def backtest_record(row: Sequence[object]) -> BacktestRecord:
    """A row in `BACKTEST_COLUMNS` order as a validated record."""
    try:
        return msgspec.convert(dict(zip(BACKTEST_COLUMNS, row, strict=True)), BacktestRecord)
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
