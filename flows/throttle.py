"""`FormingThrottle`: at most one forming-candle publish per series in each interval.

A series is one market and timeframe, numbered by the caller. A forming update that comes too
soon after the last publish is held back as pending; `due_pending` hands back the series whose
wait is over, so the latest state goes out once the interval has passed. Processing time only:
this is not part of the snapshotted state.
"""

from __future__ import annotations

import numpy as np

_NEVER = np.iinfo(np.int64).min // 2


class FormingThrottle:
    def __init__(self, interval_ns: int) -> None:
        if interval_ns < 0:
            raise ValueError(f"the forming-candle interval must be >= 0 ns, got {interval_ns}")
        self.interval_ns = interval_ns
        self._last = np.full(64, _NEVER, np.int64)
        self._pending = np.zeros(64, np.bool_)

    def _grow(self, series: np.ndarray) -> None:
        if len(series) and int(series.max()) >= len(self._last):
            size = max(2 * len(self._last), int(series.max()) + 1)
            last = np.full(size, _NEVER, np.int64)
            pending = np.zeros(size, np.bool_)
            last[: len(self._last)] = self._last
            pending[: len(self._pending)] = self._pending
            self._last, self._pending = last, pending

    def settled(self, series: np.ndarray) -> None:
        """These series' candles closed: nothing of theirs is pending any more."""
        self._grow(series)
        self._pending[series] = False

    def take(self, series: np.ndarray, now_ns: int) -> np.ndarray:
        """For forming updates of distinct `series`: a mask of those to publish now."""
        self._grow(series)
        due = now_ns - self._last[series] >= self.interval_ns
        published = series[due]
        self._last[published] = now_ns
        self._pending[published] = False
        self._pending[series[~due]] = True
        return due

    def due_pending(self, now_ns: int) -> np.ndarray:
        """Pending series whose interval has passed, now marked as published."""
        ready = self._pending & (now_ns - self._last >= self.interval_ns)
        series = np.flatnonzero(ready)
        self._last[series] = now_ns
        self._pending[series] = False
        return series

    def next_due_ns(self) -> int | None:
        """When the earliest pending series may be published, if any is pending."""
        if not self._pending.any():
            return None
        return int(self._last[self._pending].min()) + self.interval_ns
