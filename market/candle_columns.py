"""`CandleColumns`: candles as numpy columns, turned into `Candle` messages only when needed.

The fold produces many candle updates per batch and the flow publishes few of them (forming
candles are throttled), so updates stay columns until a caller picks the rows it wants.

Candles that do not carry a trade count or a VWAP (an exchange's OHLCV history: `Candle.trades`
and `Candle.vwap` are None) hold `UNKNOWN_TRADES` and NaN in those columns, and become None
again in `to_candles`. The aggregator's candles always carry both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from market.arrays import Bools, Floats, Ints
from market.messages import Candle

#: The `trades` value of a candle that carries no trade count.
UNKNOWN_TRADES = -1

_ROW_FIELDS = ("market", "timeframe", "ts", "open", "high", "low", "close", "volume", "trades",
               "vwap", "closed")


@dataclass(frozen=True, slots=True)
class CandleColumns:
    """Rows of candles. `market[i]` indexes `markets` ((exchange, symbol) pairs) and
    `timeframe[i]` indexes `timeframe_names`; `vwap` is notional / volume, or the close when
    the volume is zero; `trades` is `UNKNOWN_TRADES` and `vwap` NaN where a candle does not
    carry them."""

    markets: Sequence[tuple[str, str]]
    timeframe_names: Sequence[str]
    market: Ints  # int64
    timeframe: Ints  # int64
    ts: Ints  # int64
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    trades: Ints  # int64
    vwap: Floats
    closed: Bools  # bool

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def empty(cls, markets: Sequence[tuple[str, str]], names: Sequence[str]) -> CandleColumns:
        i, f = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(markets, names, i, i, i, f, f, f, f, f, i, f, np.empty(0, np.bool_))

    @classmethod
    def from_candles(
        cls,
        candles: Sequence[Candle],
        markets: Sequence[tuple[str, str]],
        names: Sequence[str],
    ) -> CandleColumns:
        """Candle messages as columns; each candle's market and timeframe must be listed in
        `markets` and `names` (a KeyError names the one that is not)."""
        market_index = {market: i for i, market in enumerate(markets)}
        name_index = {name: i for i, name in enumerate(names)}
        n = len(candles)
        return cls(
            markets, names,
            np.fromiter((market_index[(c.exchange, c.symbol)] for c in candles), np.int64, n),
            np.fromiter((name_index[c.timeframe] for c in candles), np.int64, n),
            np.fromiter((c.ts for c in candles), np.int64, n),
            np.fromiter((c.open for c in candles), np.float64, n),
            np.fromiter((c.high for c in candles), np.float64, n),
            np.fromiter((c.low for c in candles), np.float64, n),
            np.fromiter((c.close for c in candles), np.float64, n),
            np.fromiter((c.volume for c in candles), np.float64, n),
            np.fromiter(
                (UNKNOWN_TRADES if c.trades is None else c.trades for c in candles), np.int64, n
            ),
            np.fromiter((np.nan if c.vwap is None else c.vwap for c in candles), np.float64, n),
            np.fromiter((c.closed for c in candles), np.bool_, n),
        )

    @classmethod
    def concat(cls, parts: Sequence[CandleColumns]) -> CandleColumns:
        """The rows of every part, in order; the parts share `markets` and `timeframe_names`
        (the first part's are kept)."""
        first = parts[0]
        if len(parts) == 1:
            return first
        return cls(first.markets, first.timeframe_names, *(
            np.concatenate([getattr(p, name) for p in parts]) for name in _ROW_FIELDS
        ))

    def take(self, rows: Ints | Bools | slice) -> CandleColumns:
        """The rows selected by an index array, a boolean mask or a slice, in that order."""
        return CandleColumns(
            self.markets, self.timeframe_names, self.market[rows], self.timeframe[rows],
            self.ts[rows], self.open[rows], self.high[rows], self.low[rows], self.close[rows],
            self.volume[rows], self.trades[rows], self.vwap[rows], self.closed[rows],
        )

    def to_candles(self) -> list[Candle]:
        """Every row as a `Candle` message, in order."""
        markets = self.markets
        names = self.timeframe_names
        trades: list[int | None] = self.trades.tolist()
        vwap: list[float | None] = self.vwap.tolist()
        # Two vectorised checks; only candles without a count or a VWAP pay for more.
        if len(trades) and int(self.trades.min()) < 0:
            trades = [None if n < 0 else n for n in cast("list[int]", trades)]
        if np.isnan(self.vwap).any():
            vwap = [None if vw != vw else vw for vw in vwap]
        return [
            Candle(ex_sym[0], ex_sym[1], names[tf], ts, o, h, lo, c, v, n, vw, closed)
            for ex_sym, tf, ts, o, h, lo, c, v, n, vw, closed in zip(
                [markets[m] for m in self.market.tolist()],
                self.timeframe.tolist(), self.ts.tolist(), self.open.tolist(),
                self.high.tolist(), self.low.tolist(), self.close.tolist(),
                self.volume.tolist(), trades, vwap,
                self.closed.tolist(), strict=True,
            )
        ]
