"""Streaming building blocks shared by the indicators: a rolling window and pandas' EWM.

`Ewm` repeats the arithmetic of pandas' `Series.ewm(alpha=a, adjust=False).mean()` step by
step, so averages built on it (EMA, RMA and those using them) round exactly as pandas-ta's do.
"""

from __future__ import annotations

import math
from collections import deque


class RollingWindow:
    """The last `length` values and their sum, O(1) per push.

    The running sum is recomputed exactly once per `length` pushes, so rounding errors cannot
    accumulate over a long stream (they would after a large change of price scale).
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.items: deque[float] = deque(maxlen=length)
        self.total = 0.0
        self._pushes_since_resum = 0

    @property
    def full(self) -> bool:
        """True once `length` values have been pushed."""
        return len(self.items) == self.length

    def push(self, value: float) -> None:
        """Append `value`, dropping the oldest value once the window is full."""
        items = self.items
        if len(items) == self.length:
            self.total -= items[0]
        items.append(value)
        self._pushes_since_resum += 1
        if self._pushes_since_resum >= self.length:
            self.total = math.fsum(items)
            self._pushes_since_resum = 0
        else:
            self.total += value

    def mean(self) -> float:
        """Mean of the window, NaN until it is full."""
        return self.total / self.length if len(self.items) == self.length else math.nan


class Ewm:
    """pandas' `ewm(alpha=alpha, adjust=False).mean()`, one value at a time.

    The first value pushed seeds the average; each later one is folded in with pandas' own
    expression `((1 - a) * avg + a * x) / ((1 - a) + a)`, skipped when `x == avg`.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.keep = 1.0 - alpha
        self.norm = self.keep + alpha
        self.value = math.nan

    def push(self, x: float) -> float:
        """Fold in `x` and return the new average."""
        value = self.value
        if value != value:  # NaN: nothing seen yet
            self.value = x
        elif value != x:
            self.value = (self.keep * value + self.alpha * x) / self.norm
        return self.value


class SeededEwm:
    """An `Ewm` seeded with the mean of its first `length` inputs (pandas-ta's `presma=True`).

    NaN for the first `length - 1` inputs, as pandas-ta's `ema` and `atr` give.
    """

    def __init__(self, length: int, alpha: float) -> None:
        self.length = length
        self.ewm = Ewm(alpha)
        self._seed: list[float] | None = []

    def push(self, x: float) -> float:
        """Fold in `x` and return the new average (NaN while seeding)."""
        seed = self._seed
        if seed is None:
            return self.ewm.push(x)
        seed.append(x)
        if len(seed) < self.length:
            return math.nan
        self._seed = None
        return self.ewm.push(sum(seed) / self.length)

    @property
    def value(self) -> float:
        """The latest average, NaN while seeding."""
        return self.ewm.value
