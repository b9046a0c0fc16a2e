"""Prometheus metrics of one app, in a registry of its own (so tests can build several apps).

- `candlegraph_graphql_requests_total{operation,type}`: GraphQL operations by name and type;
- `candlegraph_graphql_errors_total{operation,type,code}`: their errors by code;
- `candlegraph_graphql_request_duration_seconds{operation,type}`: latency of queries and
  mutations (a subscription lasts as long as its client wants, so it has none);
- `candlegraph_subscriptions_open`, `candlegraph_fanout_subjects`: live subscribers, and the
  NATS subscriptions they share; `candlegraph_fanout_pending`: candles waiting in mailboxes;
- `candlegraph_fanout_messages_total`, `candlegraph_fanout_conflated_total`: candle updates
  put into subscriber mailboxes, and those that replaced an unsent update of the same bucket;
- `candlegraph_flow_lag_seconds{timeframe}`: see `server.flowlag`.
- `candlegraph_flow_restarts{worker}`, `candlegraph_flow_events{worker,event}`: see
  `server.flow_reports`.

Operation names come from clients, so at most `MAX_OPERATION_NAMES` distinct ones are kept as
labels; later new names are counted as `other`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response

from server.fanout import FanoutMetrics

MAX_OPERATION_NAMES = 200
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["operation", "type"]
        self.requests = Counter(
            "candlegraph_graphql_requests", "GraphQL operations received.", labels,
            registry=self.registry,
        )
        self.errors = Counter(
            "candlegraph_graphql_errors", "Errors returned, by code.", [*labels, "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "candlegraph_graphql_request_duration_seconds",
            "Time to answer a query or mutation.", labels, buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fanout = FanoutMetrics(
            subscriptions=Gauge(
                "candlegraph_subscriptions_open", "Live candle subscriptions open.",
                registry=self.registry,
            ),
            subjects=Gauge(
                "candlegraph_fanout_subjects",
                "NATS subscriptions held by the fan-out (one per subject in use).",
                registry=self.registry,
            ),
            pending=Gauge(
                "candlegraph_fanout_pending",
                "Candles waiting in subscriber mailboxes (the backlog of slow subscribers).",
                registry=self.registry,
            ),
            fanned_out=Counter(
                "candlegraph_fanout_messages", "Candle updates put into subscriber mailboxes.",
                registry=self.registry,
            ),
            conflated=Counter(
                "candlegraph_fanout_conflated",
                "Updates that replaced an unsent update of the same bucket (slow subscribers).",
                registry=self.registry,
            ),
        )
        self._names: set[str] = set()
        self._operations: dict[tuple[str | None, str], _Operation] = {}

    def operation_label(self, name: str | None) -> str:
        if name is None:
            return "anonymous"
        if name in self._names:
            return name
        if not _NAME.match(name) or len(self._names) >= MAX_OPERATION_NAMES:
            return "other"
        self._names.add(name)
        return name

    # `graphql_schema.guard.OperationObserver`: the schema's guard reports every operation.
    def operation_started(self, name: str | None, kind: str) -> None:
        self._series(name, kind).requests.inc()

    def operation_finished(
        self, name: str | None, kind: str, seconds: float, codes: Sequence[str]
    ) -> None:
        series = self._series(name, kind)
        if kind in {"query", "mutation"}:
            series.latency.observe(seconds)
        for code in codes:
            self.errors.labels(series.operation, kind, code).inc()

    def _series(self, name: str | None, kind: str) -> _Operation:
        # `labels()` costs a lock and a few µs; an operation's series are looked up once.
        series = self._operations.get((name, kind))
        if series is None:
            operation = self.operation_label(name)
            series = _Operation(
                operation,
                self.requests.labels(operation, kind),
                self.latency.labels(operation, kind),
            )
            if operation == name or name is None:
                self._operations[(name, kind)] = series
        return series

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


@dataclass(frozen=True, slots=True)
class _Operation:
    operation: str  # its label
    requests: Counter
    latency: Histogram
