"""Columnar writes: candle columns and indicator tables as the rows the stores write.

History (an import, a backfill) comes in columns, thousands of candles of one series at a
time; these give the stores what they write without a `Candle` or a dict per row:
`series_extents` for candles (the embedded store writes their records as blocks,
`db.candle_blocks`), `IndicatorTable` for indicator values (the
embedded store writes a table as blocks, `db.indicator_blocks`; `IndicatorTable.rows` gives
the rows of `IndicatorValues` a store without a columnar path writes).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from db.indicator_store import IndicatorValues
from market.candle_columns import CandleColumns


def series_extents(columns: CandleColumns) -> list[tuple[str, str, str, int, int, float]]:
    """Per series of the columns: (exchange, symbol, timeframe, first ts, last ts, close of
    the last candle with the last ts)."""
    width = int(columns.timeframe.max()) + 1 if len(columns) else 1
    keys = columns.market * width + columns.timeframe
    extents = []
    for key in np.unique(keys).tolist():
        rows = np.flatnonzero(keys == key)
        ts = columns.ts[rows]
        last = int(ts.max())
        at = rows[np.flatnonzero(ts == last)[-1]]
        market, frame = divmod(key, width)
        extents.append((*columns.markets[market], columns.timeframe_names[frame],
                        int(ts.min()), last, float(columns.close[at])))
    return extents


class IndicatorTable(NamedTuple):
    """Indicator values of one series at many candle times: `values[r, k]` is `names[k]` at
    the close of the candle starting at `ts[r]`. Where `replace[r]` is True, the row is
    written whole and a NaN removes a stored value; else its NaNs leave the stored values
    as they are (a warm-up's NaN is no value)."""

    exchange: str
    symbol: str
    timeframe: str
    names: tuple[str, ...]
    ts: np.ndarray  # int64
    values: np.ndarray  # float64, (len(ts), len(names))
    replace: np.ndarray  # bool

    def rows(self) -> list[IndicatorValues]:
        """The rows as `IndicatorValues`: every name of a replacing row, the numbers of the
        others."""
        isfinite = math.isfinite
        names = self.names
        out = []
        for ts, values, whole in zip(
            self.ts.tolist(), self.values.tolist(), self.replace.tolist(), strict=True
        ):
            row = dict(zip(names, values, strict=True)) if whole else {
                name: value for name, value in zip(names, values, strict=True)
                if isfinite(value)
            }
            out.append(IndicatorValues(self.exchange, self.symbol, self.timeframe, ts, row))
        return out

    def written_names(self) -> tuple[str, ...]:
        """The names a write of the table stores (a number, or a replacing NaN) somewhere."""
        if self.replace.any():
            return self.names
        some = np.isfinite(self.values).any(axis=0)
        return tuple(name for name, kept in zip(self.names, some.tolist(), strict=True) if kept)
