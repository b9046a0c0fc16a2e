"""The candle dataflow: trades in, candles and dead letters out.

    read_trades → decode_trades → key_by_symbol → aggregate_candles ─┐
                       └──────── (malformed subject) ───────────────┴→ store_and_publish

`build_flow` takes its source and sink as arguments, so tests can run it on Bytewax's
`TestingSource` and `TestingSink` as well as on NATS and a real store.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from flows.jetstream_source import RawMessage
from flows.outputs import FlowOutput
from flows.subjects import key_of_trades_subject
from market.aggregator import CandleAggregator
from market.messages import (
    DEFAULT_MAX_FUTURE_NS,
    DeadLetter,
    Trade,
    decode_trades,
    encode,
)
from market.timeframes import Timeframe


class Decoded(msgspec.Struct, frozen=True):
    """One input message after decoding: its symbol key, good trades, rejects and ack."""

    key: str | None
    trades: list[Trade]
    dead_letters: list[DeadLetter]
    reply: str


def decode_message(
    message: RawMessage, *, now_ns: Callable[[], int], max_future_ns: int
) -> Decoded:
    """Decode and validate a message; trades must match the symbol its subject names."""
    subject_key = key_of_trades_subject(message.subject)
    trades, rejected = decode_trades(message.data, now_ns=now_ns(), max_future_ns=max_future_ns)
    letters = [DeadLetter(r.reason, r.detail, message.subject, r.payload) for r in rejected]
    if subject_key is None:
        detail = "subject must be trades.<exchange>.<symbol>"
        letters.extend(
            DeadLetter("bad_subject", detail, message.subject, encode(t).decode()) for t in trades
        )
        return Decoded(None, [], letters, message.reply)
    matching = [t for t in trades if (t.exchange, t.symbol) == subject_key]
    if len(matching) != len(trades):
        detail = f"trade is not for {subject_key[0]}:{subject_key[1]}, the subject's symbol"
        letters.extend(
            DeadLetter("subject_mismatch", detail, message.subject, encode(t).decode())
            for t in trades
            if (t.exchange, t.symbol) != subject_key
        )
    return Decoded(f"{subject_key[0]}:{subject_key[1]}", matching, letters, message.reply)


def _late_letter(trade: Trade, watermark_ns: int) -> DeadLetter:
    detail = f"ts {trade.ts} is older than the watermark {watermark_ns}"
    subject = f"trades.{trade.exchange}.{trade.symbol}"
    return DeadLetter("late", detail, subject, encode(trade).decode())


class CandleLogic(StatefulBatchLogic[Decoded, FlowOutput, CandleAggregator]):
    """Bytewax state for one symbol: a `CandleAggregator` and the acks its batch owes."""

    def __init__(self, aggregator: CandleAggregator, *, flush_at_eof: bool) -> None:
        self.aggregator = aggregator
        self._flush_at_eof = flush_at_eof

    def on_batch(self, values: list[Decoded]) -> tuple[list[FlowOutput], bool]:
        agg = self.aggregator
        trades = [t for v in values for t in v.trades]
        result = agg.add(trades)
        letters = [letter for v in values for letter in v.dead_letters]
        letters.extend(_late_letter(t, agg.watermark_ns) for t in result.late)
        acks = [v.reply for v in values]
        return [FlowOutput(result.candles, letters, acks, result.duplicates)], self.RETAIN

    def on_eof(self) -> tuple[list[FlowOutput], bool]:
        # A live stream's "end" is only a shutdown: its forming candles stay open.
        if not self._flush_at_eof:
            return [], self.RETAIN
        return [FlowOutput(self.aggregator.flush(), [], [])], self.RETAIN

    def snapshot(self) -> CandleAggregator:
        return copy.deepcopy(self.aggregator)


def build_flow(
    source: Source[RawMessage],
    sink: Sink[FlowOutput],
    *,
    timeframes: Sequence[Timeframe],
    allowed_lateness: timedelta = timedelta(seconds=5),
    now_ns: Callable[[], int] = time.time_ns,
    max_future_ns: int = DEFAULT_MAX_FUTURE_NS,
    flush_at_eof: bool = False,
) -> Dataflow:
    """Wire the candle dataflow. `flush_at_eof` closes forming candles when a finite input ends."""
    lateness_ns = int(allowed_lateness.total_seconds() * 1e9)

    def build_logic(resume: CandleAggregator | None) -> CandleLogic:
        aggregator = resume or CandleAggregator(timeframes, allowed_lateness_ns=lateness_ns)
        return CandleLogic(aggregator, flush_at_eof=flush_at_eof)

    def decode(message: RawMessage) -> Decoded:
        return decode_message(message, now_ns=now_ns, max_future_ns=max_future_ns)

    def rejected_output(decoded: Decoded) -> FlowOutput:
        return FlowOutput([], decoded.dead_letters, [decoded.reply])

    flow = Dataflow("candles")
    raw = op.input("read_trades", flow, source)
    decoded = op.map("decode_trades", raw, decode)
    routed = op.branch("has_symbol", decoded, lambda d: d.key is not None)
    keyed = op.key_on("key_by_symbol", routed.trues, lambda d: d.key or "")
    aggregated = op.stateful_batch("aggregate_candles", keyed, build_logic)
    outputs = op.merge(
        "merge_outputs",
        op.map("drop_key", aggregated, lambda key_value: key_value[1]),
        op.map("rejected_only", routed.falses, rejected_output),
    )
    op.output("store_and_publish", outputs, sink)
    return flow

