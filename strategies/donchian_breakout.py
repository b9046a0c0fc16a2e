"""Donchian breakout: buy a new n-bar high, sell a new m-bar low (the turtle rule)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import DonchianChannel
from nautilus_trader.model.data import Bar

from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class DonchianBreakoutConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `DonchianBreakout`."""

    entry_period: Annotated[
        int, Meta(ge=2, le=1000, description="Buy above the highest high of this many bars.")
    ] = 20
    exit_period: Annotated[
        int, Meta(ge=2, le=1000, description="Sell below the lowest low of this many bars.")
    ] = 10


class DonchianBreakout(LongFlatStrategy):
    """Long/flat Donchian channel breakout on bar closes.

    Rule: when flat, buy on a close above the highest high of the previous `entry_period` bars;
    when long, sell on a close below the lowest low of the previous `exit_period` bars. The
    channels exclude the current bar, as in the standard breakout rule (a channel that includes
    the bar could never be closed above).

    Indicators: two NautilusTrader `DonchianChannel`s registered for bars (high and low of the
    last n bars). They are updated with the current bar before `on_bar`, so the strategy keeps
    each channel's value from the previous bar. Warm after n + 1 bars.
    """

    config_type = DonchianBreakoutConfig

    def __init__(self, config: DonchianBreakoutConfig) -> None:
        super().__init__(config)
        self._entry = DonchianChannel(config.entry_period)
        self._exit = DonchianChannel(config.exit_period)
        self._prev_upper: float | None = None
        self._prev_lower: float | None = None

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._entry)
        self.register_indicator_for_bars(self.config.bar_type, self._exit)

    def on_bar(self, bar: Bar) -> None:
        upper = self._prev_upper
        lower = self._prev_lower
        entry = self._entry
        exit_channel = self._exit
        self._prev_upper = entry.upper if entry.initialized else None
        self._prev_lower = exit_channel.lower if exit_channel.initialized else None
        close = bar.close.as_double()
        if self.long:
            if lower is not None and close < lower:
                self.exit()
        elif upper is not None and close > upper:
            self.enter(bar)


STRATEGY = DonchianBreakout
