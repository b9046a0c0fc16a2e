"""Volatility: Bollinger Bands and ATR (pandas-ta's "volatility" family)."""

from __future__ import annotations

from market.indicators import kernel
from market.indicators.base import Indicator, Param, length_param
from market.indicators.program import Layout, ewm_weights


class BBands(Indicator):
    """Bollinger Bands of the close; `ta.bbands(close, length, std, std)` (ddof=1, mamode sma).

    middle is the SMA; the bands sit `std` sample standard deviations (ddof=1, as pandas-ta)
    away; bandwidth is pandas-ta's BBB, `100 * (upper - lower) / middle`; percent is its BBP,
    `(close - lower) / (upper - lower)`, and 0 when the bands collapse (as pandas-ta's
    epsilon-padded span gives). The variance is summed over deviations from the window's
    first close, which are small (and exact within a factor of two), so it keeps full
    precision where a running sum of squares would cancel, and a flat window gives exactly
    zero. O(length) per candle.
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

    def layout(self) -> Layout:
        n = self.warmup
        return Layout(kernel.BBANDS, (n,), (float(self.params["std"]),),
                      kernel.RW_FLOATS + n, kernel.RW_INTS, window=n)


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

    def layout(self) -> Layout:
        return Layout(kernel.ATR, (self.warmup,), ewm_weights(1.0 / self.warmup),
                      kernel.SEWM_FLOATS + 1, kernel.SEWM_INTS, nan_floats=(0, 3))
