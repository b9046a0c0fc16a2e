"""`SpikeFilter`: settings of the optional filter that flags prices jumping too far, too fast.

Per symbol, the fold keeps the last accepted log price and an exponentially weighted variance
of log returns (mean taken as zero, as tick returns are). Once `warmup` returns are in, a
trade whose log return from the last accepted price exceeds `sigmas` standard deviations is
flagged: the aggregator does not apply it and reports it as `SPIKE` (the flow dead-letters it
with reason `spike`). A flagged trade does not move the filter, so one bad print cannot drag
it along. When `confirm` trades in a row would be flagged, the price has really moved: that
trade is accepted and becomes the new reference (the ones before it stay rejected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from market.arrays import Floats


@dataclass(frozen=True, slots=True)
class SpikeFilter:
    """`sigmas` <= 0 turns the filter off. `window` sets the variance's decay, in trades."""

    sigmas: float = 0.0
    window: int = 100
    warmup: int = 20
    confirm: int = 3

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"spike filter window must be >= 1 trade, got {self.window}")
        if self.warmup < 1:
            raise ValueError(f"spike filter warmup must be >= 1 return, got {self.warmup}")
        if self.confirm < 1:
            raise ValueError(f"spike filter confirm must be >= 1 trade, got {self.confirm}")

    @property
    def enabled(self) -> bool:
        return self.sigmas > 0

    def params(self) -> Floats:
        """The kernel's parameters: sigmas, decay alpha, warm-up returns, confirming trades."""
        alpha = 2.0 / (self.window + 1)
        return np.array([max(self.sigmas, 0.0), alpha, self.warmup, self.confirm], np.float64)
