"""Rate limits: a rate written as `10/min`, and token buckets per caller.

A bucket holds up to `count` tokens and refills continuously at `count` per `period_s`, so a
caller may burst `count` operations at once and then runs at the rate. Time comes from the
clock passed in (monotonic seconds), never from the wall.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


class RateError(ValueError):
    """A rate that is not `<count>/<unit>` (e.g. `10/min`, `5/s`, `100/hour`, `3/10s`)."""


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text.lower())
        if match is None or match.group(3) not in _UNITS:
            raise RateError(
                f"expected <count>/<unit> with unit s, min or hour (e.g. 10/min), got {text!r}"
            )
        count = int(match.group(1))
        multiple = int(match.group(2) or 1)
        if count < 1 or multiple < 1:
            raise RateError(f"count and period must be at least 1, got {text!r}")
        return cls(count=count, period_s=multiple * _UNITS[match.group(3)])

    def __str__(self) -> str:
        return f"{self.count}/{self.period_s:g}s"


class TokenBuckets:
    """One token bucket per key. Keys are API key names, so there are only a few."""

    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 if granted, else the seconds until one is available."""
        now = self._clock()
        capacity = float(self._rate.count)
        per_s = capacity / self._rate.period_s
        tokens, at = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / per_s
