"""`IndicatorBook`: the indicators of every market and timeframe, fed final candles.

Indicators take a candle only once it is final (the aggregator's watermark has passed its
end), so a late trade that amends a closed candle never leaves them wrong: by the time a
candle reaches them it cannot change any more. The price is a delay of the allowed lateness
between a candle's close and its indicator values. Pickles with all its state.

The book keeps every series' state as one row of two arrays and folds a whole batch of
candles, of any series, in one call into the compiled engine (`market.indicators.kernel`):
the same arithmetic as `IndicatorSet`, one candle at a time, to the bit.

A series seen for the first time can be warmed from its history: `update` takes a `History`
(the stored closed candles of one series before a time; `flows.history` reads them from the
store) and folds in, before the series' first candle, the `warm_candles(specs)` candles
before it. Windowed indicators (SMA, WMA, Bollinger, ROC, CCI, Stochastic) then give the
values of an uninterrupted run, to rounding (a window's running sum is summed afresh every
`length` candles, counted from where the fold began); recursive ones (EMA, RSI, ATR, MACD)
agree with their full-history values to far below 1e-9 relative, since a seed's weight after
30 lengths is under e^-30; daily VWAP agrees when the warm-up reaches back to 00:00 UTC (2,000
candles cover a day of 1m candles). OBV is a running total: its changes agree, its level
counts from the first candle folded in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from market.arrays import Floats, Ints
from market.candle_columns import CandleColumns
from market.indicators import STATE_FORMAT, CandleOrderError, IndicatorSpec, check_format
from market.indicators.indicator_set import set_program
from market.indicators.kernel import H_LAST_TS, fold_rows
from market.messages import Candle

#: Closed candles of one series (exchange, symbol, timeframe) that start before the given
#: time (ns), oldest first: at most `warm_candles(specs)` of them are asked for.
History = Callable[[str, str, str, int], Sequence[Candle]]

#: The fewest candles a warm-up asks for.
MIN_WARM_CANDLES = 2000

_NO_OUTPUT = np.empty((0, 0), np.float64)


def warm_candles(specs: Sequence[IndicatorSpec]) -> int:
    """Candles that warm a series' indicators: 30 times the largest integer parameter (a
    window length or smoothing period), and at least `MIN_WARM_CANDLES`."""
    lengths = [
        value for spec in specs for _, value in spec.params
        if isinstance(value, int) and not isinstance(value, bool)
    ]
    return max(MIN_WARM_CANDLES, 30 * max(lengths, default=0))


class IndicatorBook:
    """The state of every (market, timeframe) index pair, created on first use."""

    def __init__(self, specs: Sequence[IndicatorSpec]) -> None:
        self.specs = tuple(specs)
        self._program = set_program(self.specs)
        self.keys = self._program.keys
        self._rows: dict[tuple[int, int], int] = {}
        self._free: list[int] = []
        self._state_f: Floats = np.empty((0, self._program.initial_f.shape[0]), np.float64)
        self._state_i: Ints = np.empty((0, self._program.initial_i.shape[0]), np.int64)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, series: tuple[int, int]) -> bool:
        return series in self._rows

    def discard(self, market: int, timeframe: int) -> None:
        """Forget one series' state: its next candle starts it afresh (warmed, if asked)."""
        row = self._rows.pop((market, timeframe), None)
        if row is not None:
            self._free.append(row)

    def update(
        self, final: CandleColumns, history: History | None = None
    ) -> list[dict[str, float]]:
        """Fold each final candle, in order, into its series' indicators; return, per candle,
        the outputs that are numbers (warm-up NaNs left out). A series met for the first time
        is first warmed from `history`, when given."""
        if not self.specs or not len(final):
            return [{} for _ in range(len(final))]
        keys = self.keys
        isfinite = math.isfinite
        return [
            {key: value for key, value in zip(keys, row, strict=True) if isfinite(value)}
            for row in self.fold(final, history).tolist()
        ]

    def fold(self, final: CandleColumns, history: History | None = None) -> Floats:
        """As `update`, but every output of candle r in row r of one array, NaN included
        (columns in `keys` order). The array is column-major: the engine writes one
        output's values contiguously."""
        out = np.empty((len(self.keys), len(final)), np.float64)
        if len(final) and self.specs:
            rows = self._series_rows(final, history)
            self._fold(rows, final.ts, final.high, final.low, final.close, final.volume, out)
        return out.T

    def _series_rows(self, final: CandleColumns, history: History | None) -> Ints:
        """Each candle's state row; rows for series met for the first time, warmed."""
        width = int(final.timeframe.max()) + 1
        series = final.market * width + final.timeframe
        if series.min() == series.max():  # one series (a page of history): no sort
            unique, first = series[:1], np.zeros(1, np.int64)
            inverse = np.zeros(len(series), np.int64)
        else:
            unique, first, inverse = np.unique(series, return_index=True, return_inverse=True)
        rows = np.empty(len(unique), np.int64)
        for k, (key, at) in enumerate(zip(unique.tolist(), first.tolist(), strict=True)):
            pair = divmod(key, width)
            row = self._rows.get(pair)
            if row is None:
                row = self._rows[pair] = self._new_row()
                if history is not None:
                    self._warm(row, final, pair, int(final.ts[at]), history)
            rows[k] = row
        each: Ints = rows[inverse.reshape(-1)]
        return each

    def _new_row(self) -> int:
        """A state row set to a fresh series' state, the arrays grown when none is free."""
        if not self._free:
            size = self._state_f.shape[0]
            grown = max(8, 2 * size)
            self._state_f = np.concatenate(
                [self._state_f, np.empty((grown - size, self._state_f.shape[1]))])
            self._state_i = np.concatenate(
                [self._state_i, np.empty((grown - size, self._state_i.shape[1]), np.int64)])
            self._free.extend(range(grown - 1, size - 1, -1))
        row = self._free.pop()
        self._state_f[row] = self._program.initial_f
        self._state_i[row] = self._program.initial_i
        return row

    def _warm(
        self, row: int, final: CandleColumns, pair: tuple[int, int], ts: int,
        history: History,
    ) -> None:
        exchange, symbol = final.markets[pair[0]]
        old = history(exchange, symbol, final.timeframe_names[pair[1]], ts)
        if not old:
            return
        n = len(old)
        high, low, close, volume = (np.fromiter((getattr(c, name) for c in old), np.float64, n)
                                    for name in ("high", "low", "close", "volume"))
        ts_column = np.fromiter((c.ts for c in old), np.int64, n)
        self._fold(np.full(n, row, np.int64), ts_column, high, low, close, volume, _NO_OUTPUT)

    def _fold(
        self, rows: Ints, ts: Ints, high: Floats, low: Floats,
        close: Floats, volume: Floats, out: Floats,
    ) -> None:
        p = self._program
        stopped = fold_rows(
            p.codes, p.constants, p.scratch, self._state_f, self._state_i, rows,
            np.ascontiguousarray(ts, np.int64), np.ascontiguousarray(high, np.float64),
            np.ascontiguousarray(low, np.float64), np.ascontiguousarray(close, np.float64),
            np.ascontiguousarray(volume, np.float64), out, out.size > 0,
        )
        if stopped >= 0:
            previous = int(self._state_i[rows[stopped], H_LAST_TS])
            raise CandleOrderError(
                f"candle at ts={int(ts[stopped])} does not come after the previous one at"
                f" ts={previous}"
            )

    def __getstate__(self) -> dict[str, object]:
        live = sorted(self._rows.items(), key=lambda item: item[1])
        return {
            "format": STATE_FORMAT, "specs": self.specs,
            "series": [pair for pair, _ in live],
            "state_f": self._state_f[[row for _, row in live]],
            "state_i": self._state_i[[row for _, row in live]],
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_format(state, "IndicatorBook")
        self.__init__(state["specs"])  # type: ignore[misc]  # rebuilt in place, as unpickling
        self._state_f = np.array(state["state_f"], np.float64)
        self._state_i = np.array(state["state_i"], np.int64)
        self._rows = {tuple(pair): row for row, pair in enumerate(state["series"])}
