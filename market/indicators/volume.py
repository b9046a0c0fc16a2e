"""Volume: OBV and daily-anchored VWAP (pandas-ta's "volume" family)."""

from __future__ import annotations

import math

from market.indicators.base import Indicator, ratio

_NAN = math.nan
_NS_PER_DAY = 86_400 * 1_000_000_000


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
        self._prev_close = _NAN
        self._total = _NAN

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        prev, self._prev_close = self._prev_close, close
        if prev != prev:
            return
        signed = volume if close > prev else -volume if close < prev else 0.0
        self._total = signed if self._total != self._total else self._total + signed

    def current(self) -> tuple[float, ...]:
        return (self._total,)


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
        self._day: int | None = None
        self._notional = 0.0
        self._volume = 0.0

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        day = ts_ns // _NS_PER_DAY
        if day != self._day:
            self._day = day
            self._notional = 0.0
            self._volume = 0.0
        self._notional += (high + low + close) / 3.0 * volume
        self._volume += volume

    def current(self) -> tuple[float, ...]:
        if self._day is None:
            return (_NAN,)
        return (ratio(self._notional, self._volume),)
