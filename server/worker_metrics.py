"""A backtest worker's Prometheus metrics.

`candlegraph worker` serves them on `CANDLEGRAPH_METRICS_HOST`:`CANDLEGRAPH_WORKER_METRICS_PORT`
(9300 by default, 0: none); `candlegraph serve --workers N` adds them to the server's own
`/metrics`. Each worker counts what it did:

- `candlegraph_worker_jobs_total{outcome}`: job deliveries by how they ended: `succeeded`,
  `failed`, `cancelled` (the final status this worker stored), `gone` (the run had ended or
  was cancelled before it started), `retried` (handed back: the store failed, or the slot's
  process died before the last attempt), `superseded` (a later delivery owns the job),
  `gave_up` (failed after its last attempt), `dropped` (not a job);
- `candlegraph_worker_failures_total{kind}`: what went wrong: `run` (the backtest itself
  failed), `process_died`, `store`, `bad_job`;
- `candlegraph_worker_run_seconds`: time from handing a job to a slot to its end;
- `candlegraph_worker_slots`, `candlegraph_worker_busy_slots`: processes, and those running a
  job;
- `candlegraph_backtest_queue_jobs{state}`: the queue as JetStream reports it to this worker,
  every `QUEUE_POLL_S`: `pending` (not yet delivered) and `running` (delivered, not acked).
  Every worker reports the same queue: a dashboard takes the max.

All series exist at zero from the start, so a dashboard shows a flat line rather than no data.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

OUTCOMES = (
    "succeeded", "failed", "cancelled", "gone", "retried", "superseded", "gave_up", "dropped",
)
FAILURES = ("run", "process_died", "store", "bad_job")
#: How often a worker asks JetStream for the queue's depth.
QUEUE_POLL_S = 5.0
_RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        jobs = Counter("candlegraph_worker_jobs", "Job deliveries, by how they ended.",
                       ["outcome"], registry=self.registry)
        self._jobs = {outcome: jobs.labels(outcome) for outcome in OUTCOMES}
        failures = Counter("candlegraph_worker_failures", "Failures, by kind.", ["kind"],
                           registry=self.registry)
        self._failures = {kind: failures.labels(kind) for kind in FAILURES}
        self.run_seconds = Histogram(
            "candlegraph_worker_run_seconds", "Time a slot's process spent on one job.",
            buckets=_RUN_BUCKETS, registry=self.registry,
        )
        self.slots = Gauge("candlegraph_worker_slots", "Worker processes.",
                           registry=self.registry)
        self.busy = Gauge("candlegraph_worker_busy_slots", "Worker processes running a job.",
                          registry=self.registry)
        queue = Gauge("candlegraph_backtest_queue_jobs", "Jobs in the queue, by state.",
                      ["state"], registry=self.registry)
        self.pending, self.running = queue.labels("pending"), queue.labels("running")

    def job(self, outcome: str) -> None:
        self._jobs[outcome].inc()

    def failure(self, kind: str) -> None:
        self._failures[kind].inc()

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics on host:port from a daemon thread; a port in use is logged, not
        fatal: the jobs matter more than their metrics."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            log.warning("worker metrics not served on %s:%d: %s", host, port, error)
            return
        log.info("worker metrics on http://%s:%d/metrics", host, port)
