"""MACD trend: long while the MACD line is above its signal line, entered on the cross."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import ExponentialMovingAverage, MovingAverageConvergenceDivergence
from nautilus_trader.model.data import Bar

from strategies.errors import ParameterConflictError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class MacdTrendConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `MacdTrend`; `fast` must be shorter than `slow`."""

    fast: Annotated[int, Meta(ge=2, le=1000, description="Fast EMA length in bars.")] = 12
    slow: Annotated[int, Meta(ge=2, le=1000, description="Slow EMA length in bars.")] = 26
    signal: Annotated[
        int, Meta(ge=2, le=1000, description="Signal EMA length, over MACD values.")
    ] = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fast >= self.slow:
            raise ParameterConflictError("macd_trend", "fast", f"< slow ({self.slow})", self.fast)


class MacdTrend(LongFlatStrategy):
    """Long/flat MACD trend follower on bar closes.

    Rule: buy when the MACD line (EMA(fast) - EMA(slow) of closes) crosses above its signal line
    (EMA(signal) of the MACD line), i.e. the histogram turns positive; sell when it crosses back
    below. The first bar with a warm signal line only records the side.

    Indicators: NautilusTrader's `MovingAverageConvergenceDivergence` with EMAs (alpha =
    2 / (n + 1), the standard MACD), registered for bars; it has no signal line, so the signal is
    a NautilusTrader `ExponentialMovingAverage` fed each MACD value once the MACD is warm (after
    `slow` bars), as the standard definition does. The EMAs are seeded with their first input
    rather than a simple average (pandas-ta's default); the difference decays after warm-up.
    """

    config_type = MacdTrendConfig

    def __init__(self, config: MacdTrendConfig) -> None:
        super().__init__(config)
        self._macd = MovingAverageConvergenceDivergence(config.fast, config.slow)
        self._signal = ExponentialMovingAverage(config.signal)

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._macd)

    def on_bar(self, bar: Bar) -> None:
        macd = self._macd
        if not macd.initialized:
            return
        signal = self._signal
        signal.update_raw(macd.value)
        if not signal.initialized:
            return
        above = macd.value > signal.value
        self.follow_cross(bar, above)


STRATEGY = MacdTrend
