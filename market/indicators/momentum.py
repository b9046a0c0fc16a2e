"""Oscillators: RSI, MACD, Stochastic, ROC and CCI (pandas-ta's "momentum" family)."""

from __future__ import annotations

from collections.abc import Mapping

from market.indicators import kernel
from market.indicators.base import (
    MAX_LENGTH,
    Indicator,
    IndicatorConfigError,
    Param,
    ParamValue,
    length_param,
)
from market.indicators.program import Layout, ewm_weights


class RSI(Indicator):
    """Relative strength index, 0 to 100; `ta.rsi(close, length)`.

    Like pandas-ta: gains and losses are smoothed with Wilder's RMA (`alpha = 1 / length`)
    seeded with the first change, not an SMA. pandas-ta prints a value from the second candle;
    this one stays NaN until `length` changes have been seen, where TA-Lib's RSI starts too.
    """

    NAME = "rsi"
    DESCRIPTION = "Relative strength index (Wilder's smoothing), 0 to 100."
    PARAMS = (length_param(14),)

    def __init__(self, *, length: int = 14) -> None:
        super().__init__(length=length)
        self.warmup = length + 1

    def layout(self) -> Layout:
        length = self.warmup - 1
        return Layout(kernel.RSI, (length,), ewm_weights(1.0 / length), 3, 1,
                      nan_floats=(0, 1, 2))


class MACD(Indicator):
    """MACD line, signal and histogram; `ta.macd(close, fast, slow, signal)`.

    Each EMA is pandas-ta's (see `EMA`): seeded with the SMA of its first inputs. The signal
    line is the EMA of the MACD line from its first value on, as pandas-ta computes it.
    """

    NAME = "macd"
    DESCRIPTION = "Moving average convergence/divergence: line, signal line and histogram."
    PARAMS = (
        Param("fast", int, 12, 1, MAX_LENGTH, "fast EMA length, in candles; less than slow"),
        Param("slow", int, 26, 2, MAX_LENGTH, "slow EMA length, in candles"),
        Param("signal", int, 9, 1, MAX_LENGTH, "signal EMA length, in candles"),
    )
    OUTPUTS = ("macd", "signal", "hist")

    def __init__(self, *, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        super().__init__(fast=fast, slow=slow, signal=signal)
        self.warmup = slow + signal - 1

    @classmethod
    def check_together(cls, params: Mapping[str, ParamValue]) -> None:
        if params["fast"] >= params["slow"]:
            raise IndicatorConfigError(
                f"macd: parameter 'fast' must be less than 'slow', got fast={params['fast']} "
                f"and slow={params['slow']}"
            )

    def layout(self) -> Layout:
        lengths = (int(self.params["fast"]), int(self.params["slow"]),
                   int(self.params["signal"]))
        weights = tuple(w for n in lengths for w in ewm_weights(2.0 / (n + 1)))
        return Layout(kernel.MACD, lengths, weights, 3 * kernel.SEWM_FLOATS + 1,
                      3 * kernel.SEWM_INTS, nan_floats=(0, 3, 6, 9))


class Stoch(Indicator):
    """Stochastic oscillator %K and %D, 0 to 100; `ta.stoch(high, low, close, k, d, smooth_k)`.

    Raw %K is `100 * (close - lowest low) / (highest high - lowest low)` over `k` candles; %K is
    its SMA over `smooth_k`, %D the SMA of %K over `d`. A window with no range gives 0, as
    pandas-ta's epsilon-padded range does.
    """

    NAME = "stoch"
    DESCRIPTION = "Stochastic oscillator: smoothed %K and its SMA %D, 0 to 100."
    PARAMS = (
        Param("k", int, 14, 1, MAX_LENGTH, "high/low look-back, in candles"),
        Param("d", int, 3, 1, MAX_LENGTH, "%D smoothing (SMA of %K), in candles"),
        Param("smooth_k", int, 3, 1, MAX_LENGTH, "%K smoothing (SMA of raw %K), in candles"),
    )
    OUTPUTS = ("k", "d")

    def __init__(self, *, k: int = 14, d: int = 3, smooth_k: int = 3) -> None:
        super().__init__(k=k, d=d, smooth_k=smooth_k)
        self.warmup = k + smooth_k + d - 2

    def layout(self) -> Layout:
        k, d, smooth = (int(self.params[name]) for name in ("k", "d", "smooth_k"))
        floats = 1 + 2 * k + 2 * kernel.RW_FLOATS + smooth + d
        return Layout(kernel.STOCH, (k, d, smooth), (), floats, 2 + 2 * kernel.RW_INTS,
                      nan_floats=(0,), window=max(d, smooth))


class ROC(Indicator):
    """Rate of change of the close over `length` candles, in percent; `ta.roc(close, length)`."""

    NAME = "roc"
    DESCRIPTION = "Rate of change of the close over length candles, in percent."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length + 1

    def layout(self) -> Layout:
        return Layout(kernel.ROC, (self.warmup - 1,), (), self.warmup, 2)


class CCI(Indicator):
    """Commodity channel index (Lambert): `(tp - SMA(tp)) / (0.015 * mean deviation of tp)`.

    `tp` is `(high + low + close) / 3`. pandas-ta 0.4.71b0's `ta.cci` drops the parentheses
    (`tp - sma / (c * mad)`), so this follows the textbook and is checked against pandas-ta's
    own `hlc3`, `sma` and `mad` combined that way. A flat window (mean deviation at or below
    1e-12 of the mean: the typical prices are rounded sums, so that is rounding of equal
    prices, and CCI would be that noise divided by itself) gives NaN. The mean deviation
    needs the whole window: O(length) per candle.
    """

    NAME = "cci"
    DESCRIPTION = "Commodity channel index of the typical price, constant 0.015."
    PARAMS = (length_param(14, minimum=2),)
    CONSTANT = kernel.CCI_CONSTANT

    def __init__(self, *, length: int = 14) -> None:
        super().__init__(length=length)
        self.warmup = length

    def layout(self) -> Layout:
        n = self.warmup
        return Layout(kernel.CCI, (n,), (), kernel.RW_FLOATS + n, kernel.RW_INTS, window=n)
