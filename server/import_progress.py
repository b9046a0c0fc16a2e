"""Progress of `candlegraph import`: a bar on a terminal (tqdm), log lines otherwise.

`progress_for(stream)` picks by whether `stream` is a terminal. The log form writes one line
per phase every `interval_s` (and at its end): done, total, rate and time left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from flows.progress import Phase, Progress

log = logging.getLogger("candlegraph.import")


class TerminalProgress:
    """tqdm bars on `stream`, one per phase."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def phase(self, name: str, total: int, unit: str) -> Phase:
        return _Bar(tqdm(
            total=total, desc=name, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B"
            else 1000, file=self.stream, dynamic_ncols=True, leave=True,
        ))


class _Bar:
    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def advance(self, amount: int) -> None:
        if amount:
            self._bar.update(amount)

    def close(self) -> None:
        self._bar.close()


class LogProgress:
    """Progress as log lines at most every `interval_s` per phase."""

    def __init__(
        self, *, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock

    def phase(self, name: str, total: int, unit: str) -> Phase:
        return _LogPhase(name, total, unit, self.interval_s, self.clock)


class _LogPhase:
    def __init__(
        self, name: str, total: int, unit: str, interval_s: float, clock: Callable[[], float]
    ) -> None:
        self.name, self.total, self.unit = name, total, unit
        self.interval_s, self.clock = interval_s, clock
        self.done = 0
        self.started = self.last = clock()

    def advance(self, amount: int) -> None:
        self.done += amount
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            self._log(now)

    def close(self) -> None:
        self._log(self.clock(), final=True)

    def _log(self, now: float, *, final: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        share = self.done / self.total if self.total else 1.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        log.info(
            "%s: %s%s of %s %s (%.0f%%), %s %s/s%s", self.name,
            "done, " if final else "", f"{self.done:,}", f"{self.total:,}", self.unit,
            100 * share, f"{rate:,.0f}", self.unit,
            "" if final else f", about {left:,.0f} s left",
        )


def progress_for(stream: TextIO) -> Progress:
    """A bar when `stream` is a terminal, log lines otherwise."""
    return TerminalProgress(stream) if stream.isatty() else LogProgress()
