"""What the dataflow hands its sink: what to store, what to publish, and the acks owed."""

from __future__ import annotations

import msgspec

from db.indicator_store import IndicatorValues
from market.messages import Candle, DeadLetter


class FlowOutput(msgspec.Struct, frozen=True):
    """The effects of some input messages: written and published together, then acked.

    `candles` are closed candles to store (new or amended); `updates` the candle messages to
    publish, in order (forming ones throttled, closed ones always, final ones with their
    indicators); `indicators` the values to store, one row per final candle; `counts` feed
    the flow's statistics.
    """

    candles: list[Candle]
    updates: list[Candle]
    dead_letters: list[DeadLetter]
    acks: list[str]
    indicators: list[IndicatorValues] = msgspec.field(default_factory=list)
    counts: dict[str, int] = msgspec.field(default_factory=dict)
