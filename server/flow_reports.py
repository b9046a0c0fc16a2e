"""The flow workers' own reports, relayed to the server's /metrics.

Each flow worker publishes its counters on `stats.flow.<worker>` (see `flows.stats`):
`{"worker": 0, "pid": 4242, "restarts": 1, "counts": {"trades": 9000, ...}}`. The server
keeps the latest report of each worker and shows it at every scrape:

- `candlegraph_flow_restarts{worker}`: how many times the worker's supervisor has started it
  again (`server.flow_process`);
- `candlegraph_flow_events{worker,event}`: its counters since it last started (messages,
  trades, duplicates, dead_letters.<reason>, candles_closed, indicator_values, nats_retries).

A report that does not parse is ignored: it is only a relay of numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flows.subjects import FLOW_STATS_SUBJECTS

_RESTARTS = ("candlegraph_flow_restarts",
             "Times the flow worker's supervisor has started it again.")
_EVENTS = ("candlegraph_flow_events",
           "The flow worker's counters since it last started, from its latest report.")


class _Report(msgspec.Struct):
    worker: int
    restarts: int = 0
    counts: dict[str, int] = {}


class FlowReports(Collector):
    def __init__(self) -> None:
        self._latest: dict[int, _Report] = {}
        self._decoder = msgspec.json.Decoder(_Report)
        self._sub: Subscription | None = None

    async def watch(self, nc: Client, subject: str = FLOW_STATS_SUBJECTS) -> None:
        self._sub = await nc.subscribe(subject, cb=self._received)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _received(self, msg: Msg) -> None:
        try:
            report = self._decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        self._latest[report.worker] = report

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(*_RESTARTS, labels=["worker"])
        yield GaugeMetricFamily(*_EVENTS, labels=["worker", "event"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        restarts = GaugeMetricFamily(*_RESTARTS, labels=["worker"])
        events = GaugeMetricFamily(*_EVENTS, labels=["worker", "event"])
        for worker, report in sorted(self._latest.items()):
            restarts.add_metric([str(worker)], report.restarts)
            for event, value in sorted(report.counts.items()):
                events.add_metric([str(worker), event], value)
        yield restarts
        yield events
