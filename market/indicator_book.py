"""`IndicatorBook`: the indicator sets of every market and timeframe, fed final candles.

Indicators take a candle only once it is final (the aggregator's watermark has passed its
end), so a late trade that amends a closed candle never leaves them wrong: by the time a
candle reaches them it cannot change any more. The price is a delay of the allowed lateness
between a candle's close and its indicator values. Pickles with all its state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from market.candle_columns import CandleColumns
from market.indicators import IndicatorSet, IndicatorSpec


class IndicatorBook:
    """One `IndicatorSet` per (market, timeframe) index pair, created on first use."""

    def __init__(self, specs: Sequence[IndicatorSpec]) -> None:
        self.specs = tuple(specs)
        self.keys = IndicatorSet(self.specs).keys
        self._sets: dict[tuple[int, int], IndicatorSet] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def update(self, final: CandleColumns) -> list[dict[str, float]]:
        """Fold each final candle, in order, into its series' set; return, per candle, the
        outputs that are numbers (warm-up NaNs left out)."""
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
            series.update(ts, o, h, lo, c, v)
            values: list[float] = []
            for indicator in series.indicators:
                values += indicator.current()
            out.append({
                key: value for key, value in zip(self.keys, values, strict=True)
                if math.isfinite(value)
            })
        return out
