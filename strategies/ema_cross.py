"""EMA crossover: long while the fast EMA is above the slow one, entered on the cross."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import Bar

from strategies.errors import ParameterConflictError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy


class EmaCrossConfig(LongFlatConfig, frozen=True, kw_only=True):
    """Parameters of `EmaCross`; `fast` must be shorter than `slow`."""

    fast: Annotated[int, Meta(ge=2, le=1000, description="Fast EMA length in bars.")] = 10
    slow: Annotated[int, Meta(ge=2, le=1000, description="Slow EMA length in bars.")] = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fast >= self.slow:
            raise ParameterConflictError("ema_cross", "fast", f"< slow ({self.slow})", self.fast)


class EmaCross(LongFlatStrategy):
    """Long/flat EMA crossover on bar closes.

    Rule: buy when the fast EMA crosses above the slow EMA (fast > slow on this bar, fast <= slow
    on the previous one); sell when it crosses back below. The first bar on which both EMAs are
    warm only records the side, so a trade always starts at a real cross.

    Indicators: NautilusTrader's `ExponentialMovingAverage` on the close, alpha = 2 / (n + 1)
    as in the standard definition, warm after n bars. It is seeded with the first close rather
    than with the simple average of the first n closes (pandas-ta's default); the difference
    decays as (1 - alpha)^t and is negligible a few lengths after warm-up.
    """

    config_type = EmaCrossConfig

    def __init__(self, config: EmaCrossConfig) -> None:
        super().__init__(config)
        self._fast = ExponentialMovingAverage(config.fast)
        self._slow = ExponentialMovingAverage(config.slow)

    def register_indicators(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self._fast)
        self.register_indicator_for_bars(self.config.bar_type, self._slow)

    def on_bar(self, bar: Bar) -> None:
        if not self._slow.initialized:
            return
        above = self._fast.value > self._slow.value
        self.follow_cross(bar, above)


STRATEGY = EmaCross
