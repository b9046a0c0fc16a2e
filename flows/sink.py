"""Bytewax sink: stores candles and indicators, publishes updates and dead letters, then acks.

The order is the guarantee: a message's reply subject is acked only after the candles and
indicator values it produced are committed to the store and its updates are flushed to NATS.
Publishing and acking run on the NATS thread while the flow goes on with the next batch; the
next `write_batch` (or `close`) waits for them first, so batches publish in order and a
failure stops the flow.
If the process dies in between, the message is delivered again (see `flows.jetstream_source`
for how recovery repositions the consumer), and upserts make the rewrite harmless.

Each worker's sink also keeps the flow's counters (messages, trades, duplicates, dead letters
by reason, candles closed, indicator values) and reports them every `stats_interval`: a log
line, and a JSON message on `stats.flow.<worker>` (see `flows.stats`).
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from concurrent.futures import Future

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from db.store import Store
from flows.nats_bridge import NatsBridge
from flows.outputs import FlowOutput
from flows.stats import FlowStats
from flows.subjects import DEADLETTER_SUBJECT, candles_subject, flow_stats_subject
from market.messages import encode

log = logging.getLogger(__name__)

_ACK = b"+ACK"
_PUBLISH_TIMEOUT_S = 30.0
_INDICATOR_KEY = operator.itemgetter(0, 1, 2, 3)  # (exchange, symbol, timeframe, ts)


class StoreAndPublishSink(DynamicSink[FlowOutput]):
    def __init__(
        self,
        nats_url: str,
        open_store: Callable[[], Store],
        *,
        stats_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nats_url = nats_url
        self._open_store = open_store
        self._stats_interval_s = stats_interval_s
        self._clock = clock

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> _StoreAndPublishPartition:
        bridge = NatsBridge(self._nats_url, name=f"candlegraph-{step_id}-{worker_index}")
        stats = FlowStats(worker_index, interval_s=self._stats_interval_s, clock=self._clock)
        return _StoreAndPublishPartition(bridge, self._open_store(), stats)


class _StoreAndPublishPartition(StatelessSinkPartition[FlowOutput]):
    def __init__(self, bridge: NatsBridge, store: Store, stats: FlowStats) -> None:
        self._bridge = bridge
        self._store = store
        self._stats = stats
        self._publishing: Future[None] | None = None

    def write_batch(self, items: list[FlowOutput]) -> None:
        # A store error propagates: the flow stops without acking, and the messages come back.
        # Rows go in key order, which SQLite's B-trees take about twice as fast.
        closed = sorted(
            (c for item in items for c in item.candles),
            key=lambda c: (c.exchange, c.symbol, c.timeframe, c.ts),
        )
        if closed:
            self._store.upsert_candles(closed)
        indicators = sorted(
            (row for item in items for row in item.indicators), key=_INDICATOR_KEY
        )
        if indicators:
            self._store.upsert_indicator_values(indicators)
        for item in items:
            self._stats.add(item.counts)
        report = self._stats.report_if_due()
        nc = self._bridge.nc

        async def publish_and_ack() -> None:
            for item in items:
                for candle in item.updates:
                    subject = candles_subject(candle.exchange, candle.symbol, candle.timeframe)
                    await nc.publish(subject, encode(candle))
                for letter in item.dead_letters:
                    await nc.publish(DEADLETTER_SUBJECT, encode(letter))
            if report is not None:
                await nc.publish(flow_stats_subject(self._stats.worker), report)
            await nc.flush()
            for item in items:
                for reply in item.acks:
                    await nc.publish(reply, _ACK)
            await nc.flush()

        # Publishing overlaps the next batch's work; one batch at a time keeps the order.
        self._finish_publishing()
        self._publishing = self._bridge.submit(publish_and_ack)

    def _finish_publishing(self) -> None:
        """Wait for the previous batch's updates and acks; raise if they failed."""
        if self._publishing is not None:
            publishing, self._publishing = self._publishing, None
            publishing.result(_PUBLISH_TIMEOUT_S)

    def close(self) -> None:
        try:
            self._finish_publishing()
        finally:
            self._bridge.close()
            self._store.close()
