"""`IndicatorBook`: the indicator sets of every market and timeframe, fed final candles.

Indicators take a candle only once it is final (the aggregator's watermark has passed its
end), so a late trade that amends a closed candle never leaves them wrong: by the time a
candle reaches them it cannot change any more. The price is a delay of the allowed lateness
between a candle's close and its indicator values. Pickles with all its state.

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

from market.candle_columns import CandleColumns
from market.indicators import IndicatorSet, IndicatorSpec
from market.messages import Candle

#: Closed candles of one series (exchange, symbol, timeframe) that start before the given
#: time (ns), oldest first: at most `warm_candles(specs)` of them are asked for.
History = Callable[[str, str, str, int], Sequence[Candle]]

#: The fewest candles a warm-up asks for.
MIN_WARM_CANDLES = 2000


def warm_candles(specs: Sequence[IndicatorSpec]) -> int:
    """Candles that warm a series' indicators: 30 times the largest integer parameter (a
    window length or smoothing period), and at least `MIN_WARM_CANDLES`."""
    lengths = [
        value for spec in specs for _, value in spec.params
        if isinstance(value, int) and not isinstance(value, bool)
    ]
    return max(MIN_WARM_CANDLES, 30 * max(lengths, default=0))


class IndicatorBook:
    """One `IndicatorSet` per (market, timeframe) index pair, created on first use."""

    def __init__(self, specs: Sequence[IndicatorSpec]) -> None:
        self.specs = tuple(specs)
        self.keys = IndicatorSet(self.specs).keys
        self._sets: dict[tuple[int, int], IndicatorSet] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def __contains__(self, series: tuple[int, int]) -> bool:
        return series in self._sets

    def discard(self, market: int, timeframe: int) -> None:
        """Forget one series' state: its next candle starts it afresh (warmed, if asked)."""
        self._sets.pop((market, timeframe), None)

    def update(
        self, final: CandleColumns, history: History | None = None
    ) -> list[dict[str, float]]:
        """Fold each final candle, in order, into its series' set; return, per candle, the
        outputs that are numbers (warm-up NaNs left out). A series met for the first time is
        first warmed from `history`, when given."""
        if not self.specs or not len(final):
            return [{} for _ in range(len(final))]
        sets = self._sets
        out: list[dict[str, float]] = []
        rows = zip(
            final.market.tolist(), final.timeframe.tolist(), final.ts.tolist(),
            final.open.tolist(), final.high.tolist(), final.low.tolist(), final.close.tolist(),
            final.volume.tolist(), strict=True,
        )
        for market, timeframe, ts, o, h, lo, c, v in rows:
            series = sets.get((market, timeframe))
            if series is None:
                series = sets[(market, timeframe)] = IndicatorSet(self.specs)
                if history is not None:
                    exchange, symbol = final.markets[market]
                    name = final.timeframe_names[timeframe]
                    for old in history(exchange, symbol, name, ts):
                        series.update(old.ts, old.open, old.high, old.low, old.close,
                                      old.volume)
            series.update(ts, o, h, lo, c, v)
            values: list[float] = []
            for indicator in series.indicators:
                values += indicator.current()
            out.append({
                key: value for key, value in zip(self.keys, values, strict=True)
                if math.isfinite(value)
            })
        return out
