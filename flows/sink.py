"""Bytewax sink: stores closed candles, publishes updates and dead letters, then acks.

The order is the guarantee: a message's reply subject is acked only after the candles it
produced are committed to the store and its updates are flushed to NATS. If the process dies
in between, the message is delivered again and its trades are dropped as duplicates or
re-applied to state that never saw them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from db.store import Store
from flows.nats_bridge import NatsBridge
from flows.outputs import FlowOutput
from flows.subjects import DEADLETTER_SUBJECT, candles_subject
from market.messages import encode

log = logging.getLogger(__name__)

_ACK = b"+ACK"


class StoreAndPublishSink(DynamicSink[FlowOutput]):
    def __init__(self, nats_url: str, open_store: Callable[[], Store]) -> None:
        self._nats_url = nats_url
        self._open_store = open_store

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> _StoreAndPublishPartition:
        bridge = NatsBridge(self._nats_url, name=f"candlegraph-{step_id}-{worker_index}")
        return _StoreAndPublishPartition(bridge, self._open_store())


class _StoreAndPublishPartition(StatelessSinkPartition[FlowOutput]):
    def __init__(self, bridge: NatsBridge, store: Store) -> None:
        self._bridge = bridge
        self._store = store

    def write_batch(self, items: list[FlowOutput]) -> None:
        closed = [c for item in items for c in item.candles if c.closed]
        # A store error propagates: the flow stops without acking, and the messages come back.
        self._store.upsert_candles(closed)
        nc = self._bridge.nc

        async def publish_and_ack() -> None:
            for item in items:
                for candle in item.candles:
                    subject = candles_subject(candle.exchange, candle.symbol, candle.timeframe)
                    await nc.publish(subject, encode(candle))
                for letter in item.dead_letters:
                    await nc.publish(DEADLETTER_SUBJECT, encode(letter))
            await nc.flush()
            for item in items:
                for reply in item.acks:
                    if reply:
                        await nc.publish(reply, _ACK)
            await nc.flush()

        self._bridge.call(publish_and_ack)

    def close(self) -> None:
        self._bridge.close()
        self._store.close()
