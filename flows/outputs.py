"""What the dataflow hands its sink: candle updates, dead letters, and acks owed."""

from __future__ import annotations

import msgspec

from market.messages import Candle, DeadLetter


class FlowOutput(msgspec.Struct, frozen=True):
    """The effects of some input messages: written and published together, then acked."""

    candles: list[Candle]
    dead_letters: list[DeadLetter]
    acks: list[str]
    duplicates: int = 0
