"""The flow worker's Prometheus metrics, served by the worker itself.

Each worker process serves its own registry on `flow_metrics_port` (+ its index when one
`candlegraph flow` supervises several), bound to `metrics_host` (127.0.0.1 by default), so a
Prometheus server scrapes every member of a cluster directly:

- `candlegraph_flow_messages_total`, `candlegraph_flow_trades_total` (applied),
  `candlegraph_flow_duplicates_total`, `candlegraph_flow_dead_letters_total{reason}` (late
  trades are `reason="late"`), `candlegraph_flow_candles_closed_total`,
  `candlegraph_flow_indicator_values_total`, `candlegraph_flow_nats_retries_total`;
- `candlegraph_flow_batch_seconds`: time the sink spends on a batch (store writes, and
  waiting for the previous batch's publishing);
- `candlegraph_flow_snapshot_age_seconds`: time since the worker's state was last snapshotted
  (absent until the first snapshot, and with recovery off);
- `candlegraph_flow_restarts`: how many times its supervisor has started the worker again.

Every metric carries the label `worker`. The counters are fed from the same per-batch counts
as the worker's log and `stats.flow.<worker>` reports (`flows.stats`), once per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_COUNTED = {
    "messages": "Trade messages read from JetStream.",
    "trades": "Trades applied to candles.",
    "duplicates": "Trades dropped because their id was already seen.",
    "candles_closed": "Closed candles stored (new or amended).",
    "indicator_values": "Indicator values stored.",
    "nats_retries": "Batches published again after a NATS failure.",
}
_DEAD_LETTER = "dead_letters."


class FlowMetrics:
    def __init__(self, worker: int, *, restarts: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        label = str(worker)
        self._counters = {
            name: Counter(f"candlegraph_flow_{name}", text, ["worker"],
                          registry=self.registry).labels(label)
            for name, text in _COUNTED.items()
        }
        self._dead_letters = Counter(
            "candlegraph_flow_dead_letters", "Rejected trades and messages, by reason.",
            ["worker", "reason"], registry=self.registry,
        )
        self._worker = label
        self.batch_seconds = Histogram(
            "candlegraph_flow_batch_seconds", "Time the sink spends on one batch.", ["worker"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        ).labels(label)
        self._last_snapshot: float | None = None
        age = Gauge("candlegraph_flow_snapshot_age_seconds",
                    "Seconds since the worker's state was last snapshotted.", ["worker"],
                    registry=self.registry)
        age.labels(label).set_function(self._snapshot_age)
        Gauge("candlegraph_flow_restarts", "Times the worker's supervisor started it again.",
              ["worker"], registry=self.registry).labels(label).set(restarts)

    def add(self, counts: Mapping[str, int]) -> None:
        """Add one batch's counts (the names `flows.stats` uses)."""
        for name, value in counts.items():
            if not value:
                continue
            counter = self._counters.get(name)
            if counter is not None:
                counter.inc(value)
            elif name.startswith(_DEAD_LETTER):
                self._dead_letters.labels(self._worker, name[len(_DEAD_LETTER):]).inc(value)

    def snapshotted(self) -> None:
        self._last_snapshot = self._clock()

    def _snapshot_age(self) -> float:
        # NaN until the first snapshot: Prometheus shows no value rather than a made-up one.
        return float("nan") if self._last_snapshot is None else self._clock() - self._last_snapshot

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics on host:port from a daemon thread; a port in use is logged, not
        fatal: the flow matters more than its metrics."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            log.warning("flow metrics not served on %s:%d: %s", host, port, error)
            return
        log.info("flow metrics on http://%s:%d/metrics", host, port)
