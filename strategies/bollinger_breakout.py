"""Bollinger breakout: buy a close above the upper band, sell a close below the middle band."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import BollingerBands
from nautilus_trader.model.data import Bar

from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class BollingerBreakoutConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `BollingerBreakout`."""

    period: Annotated[int, Meta(ge=2, le=1000, description="Band length in bars.")] = 20
    k: Annotated[float, Meta(ge=0.1, le=10.0, description="Band width in standard deviations.")] = (
        2.0
    )


class BollingerBreakout(LongFlatStrategy):
    """Long/flat Bollinger band breakout on bar closes.

    Rule: when flat, buy on a close above the upper band (SMA + k·σ of the last n closes, this
    close included); when long, sell on a close below the middle band (the SMA).

    Indicator: NautilusTrader's `BollingerBands` with a simple moving average. It is fed the
    close (`update_raw(close, close, close)`) instead of being registered for bars, because on
    a bar it uses the typical price (high + low + close) / 3, while the standard bands (and
    pandas-ta's `bbands`) are computed on closes. σ is the population standard deviation
    (ddof = 0), as in Bollinger's definition. Warm after n bars.
    """

    config_type = BollingerBreakoutConfig

    def __init__(self, config: BollingerBreakoutConfig) -> None:
        super().__init__(config)
        self._bands = BollingerBands(config.period, config.k)

    def on_bar(self, bar: Bar) -> None:
        close = bar.close.as_double()
        bands = self._bands
        bands.update_raw(close, close, close)
        if not bands.initialized:
            return
        if self.long:
            if close < bands.middle:
                self.exit()
        elif close > bands.upper:
            self.enter(bar)


STRATEGY = BollingerBreakout
