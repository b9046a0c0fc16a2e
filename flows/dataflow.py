"""The candle dataflow: trade messages in, candles, indicators and dead letters out.

    read_trades → key_by_shard → aggregate_candles → drop_key → store_and_publish

`key_by_shard` sends each message to the shard owning its `exchange:symbol` (one shard per
worker, see `flows.shards`), and `aggregate_candles` runs `flows.candle_logic.CandleLogic`
there: decode, fold, indicators, throttled publishing. `build_flow` takes its source and sink
as arguments, so tests can run it on Bytewax's `TestingSource` and `TestingSink` as well as
on NATS and a real store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.candle_logic import CandleLogic, FlowOptions, warm_up
from flows.jetstream_source import RawMessage
from flows.outputs import FlowOutput
from flows.shards import Shards
from market.indicator_book import History
from market.indicators import DEFAULT_INDICATORS, IndicatorSpec
from market.messages import DEFAULT_MAX_FUTURE_NS
from market.spike_filter import SpikeFilter
from market.timeframes import Timeframe


def build_flow(
    source: Source[RawMessage],
    sink: Sink[FlowOutput],
    *,
    timeframes: Sequence[Timeframe],
    allowed_lateness: timedelta = timedelta(seconds=5),
    indicators: Sequence[IndicatorSpec] = DEFAULT_INDICATORS,
    forming_interval: timedelta = timedelta(milliseconds=250),
    spike_filter: SpikeFilter | None = None,
    shards: int = 1,
    now_ns: Callable[[], int] = time.time_ns,
    max_future_ns: int = DEFAULT_MAX_FUTURE_NS,
    flush_at_eof: bool = False,
    on_snapshot: Callable[[], None] | None = None,
    history: History | None = None,
) -> Dataflow:
    """Wire the candle dataflow. `flush_at_eof` closes every candle when a finite input ends;
    `shards` is the number of aggregators (one per worker); `on_snapshot` is called each time
    a shard's state is snapshotted; `history` gives the stored candles that warm the
    indicators of a series met for the first time (`flows.history`)."""
    options = FlowOptions(
        timeframes=tuple(sorted(timeframes)),
        allowed_lateness_ns=int(allowed_lateness / timedelta(microseconds=1)) * 1000,
        indicators=tuple(indicators),
        forming_interval_ns=int(forming_interval / timedelta(microseconds=1)) * 1000,
        spike_filter=spike_filter or SpikeFilter(),
        max_future_ns=max_future_ns,
        flush_at_eof=flush_at_eof,
        now_ns=now_ns,
        on_snapshot=on_snapshot,
        history=history,
    )

    warm_up(options)

    def build_logic(resume: bytes | None) -> CandleLogic:
        return CandleLogic(options, resume)

    flow = Dataflow("candles")
    raw = op.input("read_trades", flow, source)
    keyed = op.key_on("key_by_shard", raw, Shards(shards))
    aggregated = op.stateful_batch("aggregate_candles", keyed, build_logic)
    op.output("store_and_publish", op.map("drop_key", aggregated, _value), sink)
    return flow


def _value(key_value: tuple[str, FlowOutput]) -> FlowOutput:
    return key_value[1]
