"""Moving averages of the close: SMA, EMA and WMA (pandas-ta's "overlap" family)."""

from __future__ import annotations

from market.indicators import kernel
from market.indicators.base import Indicator, length_param
from market.indicators.program import Layout, ewm_weights


class SMA(Indicator):
    """Simple moving average of the close; `ta.sma(close, length)`.

    The window's running sum is summed afresh (exactly, `math.fsum`) once every `length`
    candles, so rounding errors cannot accumulate over a long stream (they would after a
    large change of price scale). Every windowed indicator here does the same.
    """

    NAME = "sma"
    DESCRIPTION = "Simple moving average of the close."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length

    def layout(self) -> Layout:
        n = self.warmup
        return Layout(kernel.SMA, (n,), (), kernel.RW_FLOATS + n, kernel.RW_INTS, window=n)


class EMA(Indicator):
    """Exponential moving average of the close; `ta.ema(close, length)`.

    Like pandas-ta (`presma=True`, `adjust=False`): seeded with the SMA of the first `length`
    closes (Python's `sum` of them over `length`), then `alpha = 2 / (length + 1)`, each close
    folded in with pandas' own expression `((1 - a) * avg + a * x) / ((1 - a) + a)`, skipped
    when `x == avg`, so it rounds exactly as pandas-ta's does.
    """

    NAME = "ema"
    DESCRIPTION = "Exponential moving average of the close, seeded with an SMA."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length

    def layout(self) -> Layout:
        return Layout(kernel.EMA, (self.warmup,), ewm_weights(2.0 / (self.warmup + 1)),
                      kernel.SEWM_FLOATS, kernel.SEWM_INTS, nan_floats=(0,))


class WMA(Indicator):
    """Linearly weighted moving average of the close, newest heaviest; `ta.wma(close, length)`.

    Keeps the plain and the weighted sum of the window: a new close shifts every weight down by
    one, which subtracts the plain sum. Both sums are recomputed exactly once per `length`
    candles so rounding does not accumulate. Like pandas-ta, the weighted sum is multiplied
    by `2 / (length² + length)` rather than divided by the weights' sum.
    """

    NAME = "wma"
    DESCRIPTION = "Linearly weighted moving average of the close, newest weighs most."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length

    def layout(self) -> Layout:
        n = self.warmup
        return Layout(kernel.WMA, (n,), (2 / (n * n + n),), 2 + n, 3, window=n)
