"""Moving averages of the close: SMA, EMA and WMA (pandas-ta's "overlap" family)."""

from __future__ import annotations

import math
from collections import deque

from market.indicators.averages import RollingWindow, SeededEwm
from market.indicators.base import Indicator, length_param


class SMA(Indicator):
    """Simple moving average of the close; `ta.sma(close, length)`."""

    NAME = "sma"
    DESCRIPTION = "Simple moving average of the close."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length
        self._window = RollingWindow(length)

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        self._window.push(close)

    def current(self) -> tuple[float, ...]:
        return (self._window.mean(),)


class EMA(Indicator):
    """Exponential moving average of the close; `ta.ema(close, length)`.

    Like pandas-ta (`presma=True`, `adjust=False`): seeded with the SMA of the first `length`
    closes, then `alpha = 2 / (length + 1)`.
    """

    NAME = "ema"
    DESCRIPTION = "Exponential moving average of the close, seeded with an SMA."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length
        self._ema = SeededEwm(length, 2.0 / (length + 1))

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        self._ema.push(close)

    def current(self) -> tuple[float, ...]:
        return (self._ema.value,)


class WMA(Indicator):
    """Linearly weighted moving average of the close, newest heaviest; `ta.wma(close, length)`.

    Keeps the plain and the weighted sum of the window: a new close shifts every weight down by
    one, which subtracts the plain sum. Both sums are recomputed exactly once per `length`
    candles so rounding does not accumulate.
    """

    NAME = "wma"
    DESCRIPTION = "Linearly weighted moving average of the close, newest weighs most."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length
        self._items: deque[float] = deque(maxlen=length)
        self._plain = 0.0
        self._weighted = 0.0
        self._since_resum = 0
        # pandas-ta multiplies the weighted sum by this, rather than dividing by the weight sum.
        self._scale = 2 / (length * length + length)

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        items = self._items
        n = self.warmup
        if len(items) == n:
            self._weighted += n * close - self._plain
            self._plain += close - items[0]
        else:
            self._weighted += (len(items) + 1) * close
            self._plain += close
        items.append(close)
        self._since_resum += 1
        if self._since_resum >= n:
            self._since_resum = 0
            self._plain = math.fsum(items)
            self._weighted = math.fsum(i * x for i, x in enumerate(items, start=1))

    def current(self) -> tuple[float, ...]:
        if len(self._items) < self.warmup:
            return (math.nan,)
        return (self._weighted * self._scale,)
