"""`FlowStats`: the flow's counters, reported as a log line and a NATS message.

Counters since the worker started: `messages`, `trades` (applied), `duplicates`,
`dead_letters.<reason>` (late, spike, undecodable, missing_field, bad_price, ...),
`candles_closed`, `indicator_values` and `nats_retries` (batches published again after a NATS
failure). Every `interval_s` the report is logged and returned as JSON (`{"worker": 0,
"pid": 4242, "restarts": 0, "counts": {...}}`) for the sink to publish on
`stats.flow.<worker>`; the pid tells an operator which process of a cluster reported, and
`restarts` how many times its supervisor has started it again (`server.flow_process`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping

import msgspec

from flows.metrics import FlowMetrics

log = logging.getLogger(__name__)


class FlowStats:
    def __init__(
        self, worker: int, *, interval_s: float, clock: Callable[[], float], restarts: int = 0,
        metrics: FlowMetrics | None = None,
    ) -> None:
        self.worker = worker
        self.restarts = restarts
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self._interval_s = interval_s
        self._clock = clock
        self._next = clock() + interval_s

    def add(self, counts: Mapping[str, int]) -> None:
        self.counts.update(counts)
        if self.metrics is not None:
            self.metrics.add(counts)

    def report_if_due(self) -> bytes | None:
        """The JSON report when the interval has passed (logging it too), else None."""
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self._interval_s
        counts = dict(sorted(self.counts.items()))
        log.info(
            "flow worker %d (restarts=%d): %s", self.worker, self.restarts,
            " ".join(f"{name}={value}" for name, value in counts.items()) or "idle",
        )
        return msgspec.json.encode({
            "worker": self.worker, "pid": os.getpid(), "restarts": self.restarts,
            "counts": counts,
        })
