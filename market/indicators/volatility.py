"""Volatility: Bollinger Bands and ATR (pandas-ta's "volatility" family)."""

from __future__ import annotations

import math

from market.indicators.averages import RollingWindow, SeededEwm
from market.indicators.base import Indicator, Param, length_param, ratio

_NAN = math.nan


class BBands(Indicator):
    """Bollinger Bands of the close; `ta.bbands(close, length, std, std)` (ddof=1, mamode sma).

    middle is the SMA; the bands sit `std` sample standard deviations (ddof=1, as pandas-ta)
    away; bandwidth is pandas-ta's BBB, `100 * (upper - lower) / middle`; percent is its BBP,
    `(close - lower) / (upper - lower)`.
    """

    NAME = "bbands"
    DESCRIPTION = "Bollinger Bands: SMA middle band, bands std sample deviations away."
    PARAMS = (
        length_param(5, minimum=2),
        Param("std", float, 2.0, 0.1, 10.0, "band distance, in standard deviations"),
    )
    OUTPUTS = ("lower", "middle", "upper", "bandwidth", "percent")

    def __init__(self, *, length: int = 5, std: float = 2.0) -> None:
        super().__init__(length=length, std=std)
        self.warmup = length
        self._std = float(std)
        self._closes = RollingWindow(length)

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        self._closes.push(close)

    def current(self) -> tuple[float, ...]:
        window = self._closes
        if not window.full:
            return (_NAN,) * 5
        n = window.length
        middle = window.total / n
        # Deviations from the window's first close are small (and exact within a factor of
        # two), so the variance keeps full precision where a running sum of squares would
        # cancel, and a flat window gives exactly zero. O(length) per candle.
        items = window.items
        first = items[0]
        shifted = squares = 0.0
        for x in items:
            d = x - first
            shifted += d
            squares += d * d
        variance = max(squares - shifted * shifted / n, 0.0) / (n - 1)
        width = self._std * math.sqrt(variance)
        lower = middle - width
        upper = middle + width
        span = upper - lower
        # Collapsed bands give %B 0, as pandas-ta's epsilon-padded span does.
        percent = (items[-1] - lower) / span if span != 0.0 else 0.0
        return (lower, middle, upper, ratio(100 * span, middle), percent)


class ATR(Indicator):
    """Average true range; `ta.atr(high, low, close, length)` (mamode rma, presma).

    Like pandas-ta: the first candle's true range is its high - low; the average is seeded
    with the SMA of the first `length` true ranges, then smoothed with Wilder's RMA
    (`alpha = 1 / length`).
    """

    NAME = "atr"
    DESCRIPTION = "Average true range, Wilder's smoothing seeded with an SMA."
    PARAMS = (length_param(14),)

    def __init__(self, *, length: int = 14) -> None:
        super().__init__(length=length)
        self.warmup = length
        self._average = SeededEwm(length, 1.0 / length)
        self._prev_close = _NAN

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        prev, self._prev_close = self._prev_close, close
        true_range = abs(high - low)
        if prev == prev:
            true_range = max(true_range, abs(high - prev), abs(prev - low))
        self._average.push(true_range)

    def current(self) -> tuple[float, ...]:
        return (self._average.value,)
