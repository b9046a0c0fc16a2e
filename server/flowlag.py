"""Flow lag: how far the newest candle seen on NATS is behind the wall clock, per timeframe.

The server watches every candle subject (`candles.>`) and remembers, per timeframe, the newest
bucket start it has seen; a scrape reports wall time minus that, in seconds. While the flow
keeps up, the figure stays below the timeframe's length (a 1s series: under a second, plus the
pipeline's delay); when the flow stalls or falls behind, it grows without bound. Only the
`ts` field of each message is decoded, so watching costs little beside NATS's own per-message
cost; a timeframe appears once its first candle has been seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

SUBJECT = "candles.>"
_NAME = "candlegraph_flow_lag_seconds"
_HELP = "Wall time minus the start of the newest candle bucket seen on NATS."


class _Stamp(msgspec.Struct):
    ts: int


class FlowLag(Collector):
    """A Prometheus collector fed by a NATS subscription; `clock` gives wall time in ns."""

    def __init__(self, *, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._newest: dict[str, int] = {}
        self._decoder = msgspec.json.Decoder(_Stamp)
        self._sub: Subscription | None = None

    async def watch(self, nc: Client, subject: str = SUBJECT) -> None:
        self._sub = await nc.subscribe(subject, cb=self._seen)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def seen(self, timeframe: str, ts_ns: int) -> None:
        if ts_ns > self._newest.get(timeframe, 0):
            self._newest[timeframe] = ts_ns

    async def _seen(self, msg: Msg) -> None:
        try:
            stamp = self._decoder.decode(msg.data)
        except msgspec.DecodeError:
            return  # the fan-out logs undecodable candles of the series clients watch
        self.seen(msg.subject.rpartition(".")[2], stamp.ts)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(_NAME, _HELP, labels=["timeframe"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(_NAME, _HELP, labels=["timeframe"])
        now = self._clock()
        for timeframe, ts in sorted(self._newest.items()):
            family.add_metric([timeframe], (now - ts) / 1e9)
        yield family
