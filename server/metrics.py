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

Operation names come from clients, so at most `MAX_OPERATION_NAMES` distinct ones are kept as
labels; later new names are counted as `other`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

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

    def operation_label(self, name: str | None) -> str:
        if name is None:
            return "anonymous"
        if name in self._names:
            return name
        if not _NAME.match(name) or len(self._names) >= MAX_OPERATION_NAMES:
            return "other"
        self._names.add(name)
        return name

    def extension(self) -> SchemaExtension:
        """A fresh per-operation extension (pass `metrics.extension` as a factory)."""
        return OperationMetrics(self)

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class OperationMetrics(SchemaExtension):
    """Counts each operation as it starts, then its errors and (for queries and mutations)
    its latency when it ends."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._labels: tuple[str, str] | None = None

    def on_validate(self) -> Iterator[None]:
        yield
        self._count()

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        operation, kind = self._labels or self._count()
        if kind in {"query", "mutation"}:
            self._metrics.latency.labels(operation, kind).observe(time.perf_counter() - started)
        context = self.execution_context
        errors = getattr(context.result, "errors", None) or context.pre_execution_errors or []
        for error in errors:
            code = (error.extensions or {}).get("code", "BAD_USER_INPUT")
            self._metrics.errors.labels(operation, kind, str(code)).inc()

    def _count(self) -> tuple[str, str]:
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:
            kind = "invalid"  # the document did not parse, or has no such operation
        self._labels = (self._metrics.operation_label(context.operation_name), kind)
        self._metrics.requests.labels(*self._labels).inc()
        return self._labels
