"""RSI mean reversion: buy an oversold market, sell it once overbought."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import MovingAverageType, RelativeStrengthIndex
from nautilus_trader.model.data import Bar

from strategies.errors import ParameterConflictError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class RsiReversionConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `RsiReversion`; `oversold` must be below `overbought`."""

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
                "rsi_reversion", "oversold", f"< overbought ({self.overbought})", self.oversold
            )


class RsiReversion(LongFlatStrategy):
    """Long/flat RSI mean reversion on bar closes.

    Rule: when flat, buy on a close whose RSI is below `oversold`; when long, sell on a close
    whose RSI is above `overbought`.

    Indicator: NautilusTrader's `RelativeStrengthIndex` configured with Wilder smoothing
    (`MovingAverageType.WILDER`, alpha = 1 / n), which is the standard RSI; its own default
    (an EMA with alpha = 2 / (n + 1)) is not. It reports 0-1, so the thresholds given on the
    usual 0-100 scale are divided by 100. Warm after n bars: the first bar counts as a zero
    change, and the averages start from their first value rather than from a simple average
    of the first n changes (the difference decays as (1 - 1/n)^t).
    """

    config_type = RsiReversionConfig

    def __init__(self, config: RsiReversionConfig) -> None:
        super().__init__(config)
        self._rsi = RelativeStrengthIndex(config.period, MovingAverageType.WILDER)
        self._low = config.oversold / 100.0
        self._high = config.overbought / 100.0

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._rsi)

    def on_bar(self, bar: Bar) -> None:
        if not self._rsi.initialized:
            return
        value = self._rsi.value
        if self.long:
            if value > self._high:
                self.exit()
        elif value < self._low:
            self.enter(bar)


STRATEGY = RsiReversion
