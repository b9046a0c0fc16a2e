"""SMA band: long while the close holds above its moving average by a margin.

An example of a user strategy, loaded from a directory named in CANDLEGRAPH_STRATEGY_PATH
(see "Write your own strategy" in the README). The file's name is the strategy's name
(`sma_band`); the module's first docstring line is its summary; the strategy class's docstring
is its rule; its parameters come from the config class.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.data import Bar

from strategies.errors import ParameterConflictError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class SmaBandConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `SmaBand`: each is `Annotated[type, Meta(bounds, description)] = default`."""

    period: Annotated[int, Meta(ge=2, le=500, description="Moving average length in bars.")] = 20
    enter_above: Annotated[
        float, Meta(ge=0.0, le=0.2, description="Buy when the close is this fraction above it.")
    ] = 0.01
    exit_below: Annotated[
        float, Meta(ge=0.0, le=0.2, description="Sell when the close is this fraction below it.")
    ] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        # A rule across parameters: refused when a backtest or a sweep asks for it.
        if self.enter_above == 0.0 and self.exit_below == 0.0:
            raise ParameterConflictError(
                "sma_band", "enter_above", "> 0 when exit_below is 0 (a band)", self.enter_above
            )


class SmaBand(LongFlatStrategy):
    """Long/flat trend filter on bar closes.

    Rule: buy when the close is more than `enter_above` above the simple moving average of the
    last `period` closes (this bar's included); sell when it is more than `exit_below` below it.

    Indicators: NautilusTrader's `SimpleMovingAverage`, registered for bars so it is updated
    before `on_bar`; warm after `period` bars.
    """

    config_type = SmaBandConfig

    def __init__(self, config: SmaBandConfig) -> None:
        super().__init__(config)
        self._sma = SimpleMovingAverage(config.period)

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._sma)

    def on_bar(self, bar: Bar) -> None:
        if not self._sma.initialized:
            return
        close, average = bar.close.as_double(), self._sma.value
        if not self.long and close > average * (1.0 + self.config.enter_above):
            self.enter(bar)
        elif self.long and close < average * (1.0 - self.config.exit_below):
            self.exit()


STRATEGY = SmaBand
