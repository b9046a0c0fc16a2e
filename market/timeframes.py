"""Timeframes: named bucket widths whose buckets are aligned to the Unix epoch in UTC.

A timeframe is written as a count and a unit (`1s`, `5m`, `4h`, `1d`). Buckets start at whole
multiples of the width since 1970-01-01T00:00:00Z, so `1d` buckets start at midnight UTC and
`4h` buckets at 00:00, 04:00, ... UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NS_PER_SECOND = 1_000_000_000

_UNIT_NS = {
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86400 * NS_PER_SECOND,
}
_PATTERN = re.compile(r"^([1-9][0-9]{0,4})([smhd])$")

#: The standard timeframes (ARCHITECTURE.md, "Rules of aggregation"), in increasing width.
STANDARD_TIMEFRAMES = ("1s", "1m", "5m", "15m", "1h", "4h", "1d")


class TimeframeError(ValueError):
    """A timeframe name that cannot be parsed."""


@dataclass(frozen=True, slots=True, order=True)
class Timeframe:
    """A bucket width. Orders by width, so `min()` finds the finest timeframe."""

    ns: int
    name: str

    @classmethod
    def parse(cls, name: str) -> Timeframe:
        """Parse `1s`, `5m`, `4h`, `1d` and the like; raise `TimeframeError` otherwise."""
        match = _PATTERN.match(name)
        if match is None:
            raise TimeframeError(
                f"timeframe {name!r} is not a count and a unit such as '1s', '5m', '4h' or '1d'"
            )
        count, unit = match.groups()
        return cls(ns=int(count) * _UNIT_NS[unit], name=name)

    def floor(self, ts_ns: int) -> int:
        """Start of the bucket holding `ts_ns` (nanoseconds since the epoch, UTC)."""
        return ts_ns - ts_ns % self.ns

    def divides(self, other: Timeframe) -> bool:
        """True when every bucket of `other` is a whole number of this timeframe's buckets."""
        return other.ns % self.ns == 0

    def __str__(self) -> str:
        return self.name


def parse_timeframes(names: str | list[str] | tuple[str, ...]) -> tuple[Timeframe, ...]:
    """Parse a comma-separated string or a list of names into sorted, distinct timeframes."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    parsed = sorted({Timeframe.parse(n) for n in names})
    if not parsed:
        raise TimeframeError("at least one timeframe is required")
    return tuple(parsed)
