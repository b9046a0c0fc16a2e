"""`CandleColumns`: candles as numpy columns, turned into `Candle` messages only when needed.

The fold produces many candle updates per batch and the flow publishes few of them (forming
candles are throttled), so updates stay columns until a caller picks the rows it wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from market.messages import Candle


@dataclass(frozen=True, slots=True)
class CandleColumns:
    """Rows of candles. `market[i]` indexes `markets` ((exchange, symbol) pairs) and
    `timeframe[i]` indexes `timeframe_names`; `vwap` is notional / volume, or the close when
    the volume is zero."""

    markets: Sequence[tuple[str, str]]
    timeframe_names: Sequence[str]
    market: np.ndarray  # int64
    timeframe: np.ndarray  # int64
    ts: np.ndarray  # int64
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trades: np.ndarray  # int64
    vwap: np.ndarray
    closed: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def empty(cls, markets: Sequence[tuple[str, str]], names: Sequence[str]) -> CandleColumns:
        i, f = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(markets, names, i, i, i, f, f, f, f, f, i, f, np.empty(0, np.bool_))

    def take(self, rows: np.ndarray) -> CandleColumns:
        """The rows selected by an index array or a boolean mask, in that order."""
        return CandleColumns(
            self.markets, self.timeframe_names, self.market[rows], self.timeframe[rows],
            self.ts[rows], self.open[rows], self.high[rows], self.low[rows], self.close[rows],
            self.volume[rows], self.trades[rows], self.vwap[rows], self.closed[rows],
        )

    def to_candles(self) -> list[Candle]:
        """Every row as a `Candle` message, in order."""
        markets = self.markets
        names = self.timeframe_names
        return [
            Candle(ex_sym[0], ex_sym[1], names[tf], ts, o, h, lo, c, v, n, vw, closed)
            for ex_sym, tf, ts, o, h, lo, c, v, n, vw, closed in zip(
                [markets[m] for m in self.market.tolist()],
                self.timeframe.tolist(), self.ts.tolist(), self.open.tolist(),
                self.high.tolist(), self.low.tolist(), self.close.tolist(),
                self.volume.tolist(), self.trades.tolist(), self.vwap.tolist(),
                self.closed.tolist(), strict=True,
            )
        ]
