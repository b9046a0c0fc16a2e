"""Oscillators: RSI, MACD, Stochastic, ROC and CCI (pandas-ta's "momentum" family)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

from market.indicators.averages import Ewm, RollingWindow, SeededEwm
from market.indicators.base import (
    MAX_LENGTH,
    Indicator,
    IndicatorConfigError,
    Param,
    ParamValue,
    length_param,
    ratio,
)

_NAN = math.nan
#: A CCI mean deviation at or below this fraction of the mean typical price counts as zero.
_FLAT = 1e-12


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
        self._gain = Ewm(1.0 / length)
        self._loss = Ewm(1.0 / length)
        self._prev_close = _NAN
        self._changes = 0

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        prev, self._prev_close = self._prev_close, close
        if prev != prev:
            return
        change = close - prev
        self._gain.push(change if change > 0.0 else 0.0)
        self._loss.push(change if change < 0.0 else 0.0)
        self._changes += 1

    def current(self) -> tuple[float, ...]:
        if self._changes < self.warmup - 1:
            return (_NAN,)
        gain = self._gain.value
        return (ratio(100 * gain, gain + abs(self._loss.value)),)


class MACD(Indicator):
    """MACD line, signal and histogram; `ta.macd(close, fast, slow, signal)`.

    Each EMA is pandas-ta's: seeded with the SMA of its first inputs. The signal line is the
    EMA of the MACD line from its first value on, as pandas-ta computes it.
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
        self._fast = SeededEwm(fast, 2.0 / (fast + 1))
        self._slow = SeededEwm(slow, 2.0 / (slow + 1))
        self._signal = SeededEwm(signal, 2.0 / (signal + 1))
        self._line = _NAN

    @classmethod
    def check_together(cls, params: Mapping[str, ParamValue]) -> None:
        if params["fast"] >= params["slow"]:
            raise IndicatorConfigError(
                f"macd: parameter 'fast' must be less than 'slow', got fast={params['fast']} "
                f"and slow={params['slow']}"
            )

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        line = self._fast.push(close) - self._slow.push(close)
        self._line = line
        if line == line:
            self._signal.push(line)

    def current(self) -> tuple[float, ...]:
        line = self._line
        signal = self._signal.value
        return (line, signal, line - signal)


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
        self._look_back = k
        self._highs: deque[float] = deque(maxlen=k)
        self._lows: deque[float] = deque(maxlen=k)
        self._smooth = RollingWindow(smooth_k)
        self._signal = RollingWindow(d)
        self._k = _NAN

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        highs, lows = self._highs, self._lows
        highs.append(high)
        lows.append(low)
        if len(lows) < self._look_back:
            return
        lowest = min(lows)
        span = max(highs) - lowest
        raw = 100 * (close - lowest) / span if span != 0.0 else 0.0
        self._smooth.push(raw)
        k = self._smooth.mean()
        self._k = k
        if k == k:
            self._signal.push(k)

    def current(self) -> tuple[float, ...]:
        return (self._k, self._signal.mean())


class ROC(Indicator):
    """Rate of change of the close over `length` candles, in percent; `ta.roc(close, length)`."""

    NAME = "roc"
    DESCRIPTION = "Rate of change of the close over length candles, in percent."
    PARAMS = (length_param(10),)

    def __init__(self, *, length: int = 10) -> None:
        super().__init__(length=length)
        self.warmup = length + 1
        self._closes: deque[float] = deque(maxlen=length + 1)

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        self._closes.append(close)

    def current(self) -> tuple[float, ...]:
        closes = self._closes
        if len(closes) < self.warmup:
            return (_NAN,)
        then = closes[0]
        return (ratio(100 * (closes[-1] - then), then),)


class CCI(Indicator):
    """Commodity channel index (Lambert): `(tp - SMA(tp)) / (0.015 * mean deviation of tp)`.

    `tp` is `(high + low + close) / 3`. pandas-ta 0.4.71b0's `ta.cci` drops the parentheses
    (`tp - sma / (c * mad)`), so this follows the textbook and is checked against pandas-ta's
    own `hlc3`, `sma` and `mad` combined that way. A flat window (deviation at rounding level)
    gives NaN. The mean deviation needs the whole window: O(length) per candle.
    """

    NAME = "cci"
    DESCRIPTION = "Commodity channel index of the typical price, constant 0.015."
    PARAMS = (length_param(14, minimum=2),)
    CONSTANT = 0.015

    def __init__(self, *, length: int = 14) -> None:
        super().__init__(length=length)
        self.warmup = length
        self._typical = RollingWindow(length)

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        self._typical.push((high + low + close) / 3.0)

    def current(self) -> tuple[float, ...]:
        window = self._typical
        if not window.full:
            return (_NAN,)
        mean = window.total / window.length
        deviation = sum(abs(x - mean) for x in window.items) / window.length
        if deviation <= _FLAT * abs(mean):
            # The typical prices are rounded sums: a deviation this small is rounding of equal
            # prices, so CCI is 0/0 (pandas-ta returns that noise divided by itself).
            return (_NAN,)
        return ((window.items[-1] - mean) / (self.CONSTANT * deviation),)
