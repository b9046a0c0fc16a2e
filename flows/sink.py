"""Bytewax sink: stores candles and indicators, publishes updates and dead letters, then acks.

The order is the guarantee: a message's reply subject is acked only after the candles and
indicator values it produced are committed to the store and its updates are flushed to NATS.
Publishing and acking run on the NATS thread while the flow goes on with the next batch; the
next `write_batch` (or `close`) waits for them first, so batches publish in order. A NATS
server that goes away and comes back is waited for and the batch published again
(`flows.delivery`), never a reason to stop; a store error stops the flow unacked.
If the process dies in between, the message is delivered again (see `flows.jetstream_source`
for how recovery repositions the consumer), and upserts make the rewrite harmless.

Each worker's sink also keeps the flow's counters (messages, trades, duplicates, dead letters
by reason, candles closed, indicator values) and reports them every `stats_interval`: a log
line, and a JSON message on `stats.flow.<worker>` (see `flows.stats`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import operator
import time
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from db.store import Store
from flows.delivery import publish_all
from flows.metrics import FlowMetrics
from flows.nats_bridge import NatsBridge
from flows.outputs import FlowOutput
from flows.stats import FlowStats
from flows.subjects import DEADLETTER_SUBJECT, candles_subject, flow_stats_subject
from market.messages import encode

log = logging.getLogger(__name__)

_ACK = b"+ACK"
_WAIT_LOG_S = 10.0
_CLOSE_WAIT_S = 10.0
_INDICATOR_KEY = operator.itemgetter(0, 1, 2, 3)  # (exchange, symbol, timeframe, ts)


class StoreAndPublishSink(DynamicSink[FlowOutput]):
    def __init__(
        self,
        nats_url: str,
        open_store: Callable[[], Store],
        *,
        stats_interval_s: float = 10.0,
        restarts: int = 0,
        metrics: FlowMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nats_url = nats_url
        self._restarts = restarts
        self._metrics = metrics
        self._open_store = open_store
        self._stats_interval_s = stats_interval_s
        self._clock = clock

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> _StoreAndPublishPartition:
        bridge = NatsBridge(self._nats_url, name=f"candlegraph-{step_id}-{worker_index}")
        stats = FlowStats(worker_index, interval_s=self._stats_interval_s, clock=self._clock,
                          restarts=self._restarts, metrics=self._metrics)
        return _StoreAndPublishPartition(bridge, self._open_store(), stats)


class _StoreAndPublishPartition(StatelessSinkPartition[FlowOutput]):
    def __init__(self, bridge: NatsBridge, store: Store, stats: FlowStats) -> None:
        self._bridge = bridge
        self._store = store
        self._stats = stats
        self._publishing: concurrent.futures.Future[int] | None = None

    def write_batch(self, items: list[FlowOutput]) -> None:
        started = time.perf_counter()
        self._write_batch(items)
        if self._stats.metrics is not None:
            self._stats.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _write_batch(self, items: list[FlowOutput]) -> None:
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
        messages = [
            (candles_subject(c.exchange, c.symbol, c.timeframe), encode(c))
            for item in items for c in item.updates
        ]
        messages += [(DEADLETTER_SUBJECT, encode(d)) for item in items for d in item.dead_letters]
        if report is not None:
            messages.append((flow_stats_subject(self._stats.worker), report))
        acks = [(reply, _ACK) for item in items for reply in item.acks]
        nc = self._bridge.nc

        async def publish_and_ack() -> int:
            # Retried through reconnects (flows.delivery); the acks only once the rest is in.
            retries = await publish_all(nc, messages, what="candle updates")
            return retries + await publish_all(nc, acks, what="acks")

        # Publishing overlaps the next batch's work; one batch at a time keeps the order.
        self._finish_publishing()
        self._publishing = self._bridge.submit(publish_and_ack)

    def _finish_publishing(self, *, give_up_after_s: float | None = None) -> None:
        """Wait for the previous batch's updates and acks; raise if they failed.

        NATS being away is no failure (`publish_all` retries until it is back): this waits
        as long as that takes, logging now and then, unless `give_up_after_s` is given.
        """
        if self._publishing is None:
            return
        publishing, self._publishing = self._publishing, None
        waited = 0.0
        # `wait`, not `result(timeout)`: a nats-py timeout raised by the batch is a
        # TimeoutError too, and must not pass for a batch still running.
        while not concurrent.futures.wait([publishing], _WAIT_LOG_S).done:
            waited += _WAIT_LOG_S
            if give_up_after_s is not None and waited >= give_up_after_s:
                publishing.cancel()
                log.error("gave up publishing the last batch after %.0f s: its messages are"
                          " not acked and will be delivered again", waited)
                return
            log.warning("still publishing a batch after %.0f s: is NATS reachable?", waited)
        retries = publishing.result()
        if retries:
            self._stats.add({"nats_retries": retries})

    def close(self) -> None:
        try:
            self._finish_publishing(give_up_after_s=_CLOSE_WAIT_S)
        finally:
            self._bridge.close()
            self._store.close()
