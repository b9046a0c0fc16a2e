"""Volume: OBV and daily-anchored VWAP (pandas-ta's "volume" family)."""

from __future__ import annotations

from market.indicators import kernel
from market.indicators.base import Indicator
from market.indicators.program import Layout


class OBV(Indicator):
    """On-balance volume; `ta.obv(close, volume)`.

    Like pandas-ta: NaN on the first candle, then the running sum of each later candle's
    volume signed by its close's change (zero when unchanged); the first volume is not counted.
    """

    NAME = "obv"
    DESCRIPTION = "On-balance volume: running sum of volume signed by the close's change."

    def __init__(self) -> None:
        super().__init__()
        self.warmup = 2

    def layout(self) -> Layout:
        return Layout(kernel.OBV, (), (), 2, 0, nan_floats=(0, 1))


class VWAP(Indicator):
    """Volume-weighted average typical price since 00:00 UTC; `ta.vwap(h, l, c, v, anchor="D")`.

    Typical price is `(high + low + close) / 3`; the sums restart with the first candle of each
    UTC day, taken from `ts_ns`. NaN while the day's volume is zero.
    """

    NAME = "vwap"
    DESCRIPTION = "Volume-weighted average typical price, restarting each UTC day."

    def __init__(self) -> None:
        super().__init__()
        self.warmup = 1

    def layout(self) -> Layout:
        return Layout(kernel.VWAP, (), (), 2, 2)
