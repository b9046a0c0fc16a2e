"""Trend pullback: buy an oversold dip while the price is above its trend, sell once overbought."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import (
    ExponentialMovingAverage,
    MovingAverageType,
    RelativeStrengthIndex,
)
from nautilus_trader.model.data import Bar

from strategies.errors import ParameterConflictError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class TrendPullbackConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `TrendPullback`; `oversold` must be below `overbought`."""

    trend: Annotated[int, Meta(ge=2, le=5000, description="Trend EMA length in bars.")] = 200
    period: Annotated[int, Meta(ge=2, le=1000, description="RSI length in bars.")] = 14
    oversold: Annotated[
        float, Meta(ge=1.0, le=99.0, description="Buy when the RSI (0-100) closes below this.")
    ] = 30.0
    overbought: Annotated[
        float, Meta(ge=1.0, le=99.0, description="Sell when the RSI (0-100) closes above this.")
    ] = 70.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.oversold >= self.overbought:
            raise ParameterConflictError(
                "trend_pullback", "oversold", f"< overbought ({self.overbought})", self.oversold
            )


class TrendPullback(LongFlatStrategy):
    """Long/flat pullback buying within an uptrend, on bar closes.

    Rule: when flat, buy on a close above the trend EMA whose RSI is below `oversold`; when
    long, sell on a close whose RSI is above `overbought`.

    Indicators: NautilusTrader's `ExponentialMovingAverage` on the close (alpha = 2 / (n + 1),
    warm after n bars) and its `RelativeStrengthIndex` with Wilder smoothing, as in
    `rsi_reversion` (thresholds on the usual 0-100 scale).
    """

    config_type = TrendPullbackConfig

    def __init__(self, config: TrendPullbackConfig) -> None:
        super().__init__(config)
        self._trend = ExponentialMovingAverage(config.trend)
        self._rsi = RelativeStrengthIndex(config.period, MovingAverageType.WILDER)
        self._low = config.oversold / 100.0
        self._high = config.overbought / 100.0

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._trend)
        self.register_indicator_for_bars(self.config.bar_type, self._rsi)

    def on_bar(self, bar: Bar) -> None:
        if not (self._rsi.initialized and self._trend.initialized):
            return
        value = self._rsi.value
        if self.long:
            if value > self._high:
                self.exit()
        elif value < self._low and bar.close.as_double() > self._trend.value:
            self.enter(bar)


STRATEGY = TrendPullback
