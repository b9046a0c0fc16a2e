"""Donchian breakout both ways: long a new n-bar high, short a new n-bar low (the turtle rule)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import DonchianChannel
from nautilus_trader.model.data import Bar

from strategies.long_short import LongShortConfig, LongShortStrategy


class DonchianLongShortConfig(LongShortConfig, frozen=True, kw_only=True):
    """Parameters of `DonchianLongShort`."""

    entry_period: Annotated[
        int,
        Meta(ge=2, le=1000, description="Go long above the highest high, short below the "
             "lowest low, of this many bars."),
    ] = 20
    exit_period: Annotated[
        int,
        Meta(ge=2, le=1000, description="Close a long below the lowest low, a short above "
             "the highest high, of this many bars."),
    ] = 10


class DonchianLongShort(LongShortStrategy):
    """Long/short Donchian channel breakout on bar closes (needs a MARGIN account).

    Rule: on a close above the highest high of the previous `entry_period` bars, go long
    (closing a short first); on a close below their lowest low, go short (closing a long
    first). A long is closed on a close below the lowest low of the previous `exit_period`
    bars, a short on a close above their highest high, and the strategy stays flat until the
    next entry signal. The channels exclude the current bar, as in the long/flat
    `donchian_breakout`.

    Indicators: two NautilusTrader `DonchianChannel`s registered for bars, each read as its
    value of the previous bar. Warm after n + 1 bars.
    """

    config_type = DonchianLongShortConfig

    def __init__(self, config: DonchianLongShortConfig) -> None:
        super().__init__(config)
        self._entry = DonchianChannel(config.entry_period)
        self._exit = DonchianChannel(config.exit_period)
        self._prev_entry: tuple[float, float] | None = None
        self._prev_exit: tuple[float, float] | None = None

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._entry)
        self.register_indicator_for_bars(self.config.bar_type, self._exit)

    def on_bar(self, bar: Bar) -> None:
        entry, exit_ = self._prev_entry, self._prev_exit
        self._prev_entry = _channel(self._entry)
        self._prev_exit = _channel(self._exit)
        close = bar.close.as_double()
        if exit_ is not None:
            low, high = exit_
            if (self.side == 1 and close < low) or (self.side == -1 and close > high):
                self.go_flat()
        if entry is None:
            return
        low, high = entry
        if close > high:
            self.go_long(bar)
        elif close < low:
            self.go_short(bar)


def _channel(channel: DonchianChannel) -> tuple[float, float] | None:
    return (channel.lower, channel.upper) if channel.initialized else None


STRATEGY = DonchianLongShort
