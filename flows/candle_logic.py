"""`CandleLogic`: the Bytewax state of one shard, from raw trade messages to `FlowOutput`s.

Per batch of messages it decodes every message into one batch of trade columns, folds them
into the shard's `CandleAggregator` in arrival order, feeds final candles to the indicators,
and says what to store, publish, dead-letter and ack:

- closed candles (new, or amended by a late trade) are stored and published;
- forming candles are published at most once per `forming_interval` per market and
  timeframe; a held-back update goes out when its interval ends (a `notify_at` timer);
- final candles (the watermark passed their end) update the indicators; their values are
  stored and published on the closed candle (re-published if it closed in an earlier batch).
  A series' first final candle since start-up (with no snapshot of it) first warms its
  indicators from the candles stored before it (`FlowOptions.history`, `flows.history`);
- rejected elements, late trades and spikes become dead letters with their reason.

Processing time drives two timers through `notify_at`: the throttle above, and the idle
close. When no trade has arrived for `max(allowed lateness, 1 s)`, event time moves on with
the clock from the last trade (as Bytewax's `EventClock` does), so quiet markets still close
their candles. A restart quicker than that changes nothing, which keeps recovery exact.

The snapshot is the pickled aggregator and indicator sets; throttle and idle timing restart
from the clock when a worker resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import numpy as np
from bytewax.operators import StatefulBatchLogic

from db.indicator_store import IndicatorValues
from flows.jetstream_source import RawMessage
from flows.outputs import FlowOutput
from flows.subjects import key_of_trades_subject, trades_subject
from flows.throttle import FormingThrottle
from market.aggregator import LATE, SPIKE, AddResult, CandleAggregator
from market.candle_columns import CandleColumns
from market.indicator_book import History, IndicatorBook
from market.indicators import DEFAULT_INDICATORS, IndicatorSpec
from market.json_trades import TradeDecoder
from market.messages import Candle, DeadLetter, Rejected, Trade, encode
from market.spike_filter import SpikeFilter
from market.timeframes import STANDARD_TIMEFRAMES, Timeframe, parse_timeframes

log = logging.getLogger(__name__)

_IDLE_TICK_NS = 500_000_000
_MIN_IDLE_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """How a shard aggregates: built once by `build_flow`, shared by every shard."""

    timeframes: tuple[Timeframe, ...]
    allowed_lateness_ns: int
    indicators: tuple[IndicatorSpec, ...]
    forming_interval_ns: int
    spike_filter: SpikeFilter
    max_future_ns: int
    flush_at_eof: bool
    now_ns: Callable[[], int]
    on_snapshot: Callable[[], None] | None = None
    #: Stored candles that warm the indicators of a series met for the first time.
    history: History | None = None

    @property
    def idle_after_ns(self) -> int:
        return max(self.allowed_lateness_ns, _MIN_IDLE_NS)


class ShardState:
    """What a shard snapshots: its aggregator and its indicator sets."""

    def __init__(self, options: FlowOptions) -> None:
        self.aggregator = CandleAggregator(
            options.timeframes,
            allowed_lateness_ns=options.allowed_lateness_ns,
            spike_filter=options.spike_filter,
        )
        self.indicators = IndicatorBook(options.indicators)

    @classmethod
    def resumed(cls, snapshot: bytes, options: FlowOptions) -> ShardState:
        """The snapshotted state, checked against today's settings.

        Candles cannot change timeframes or lateness midway, so that is refused; a new set of
        indicators starts from empty state (and warms up again); a new spike filter applies.
        A snapshot this version cannot read (one taken before the indicator engine was
        compiled) is refused too, with what to do.
        """
        try:
            state: ShardState = pickle.loads(snapshot)
        except Exception as error:
            # Usually state pickled by another version: the pure-Python indicators before
            # the compiled engine pickled other classes (`IndicatorStateError`).
            raise ValueError(
                "the recovery snapshot cannot be read by this version of CandleGraph"
                f" ({type(error).__name__}: {error}); remove the recovery directory"
                " (DATA/recovery) to start afresh"
            ) from error
        agg = state.aggregator
        if (agg.timeframes, agg.allowed_lateness_ns) != (
            options.timeframes, options.allowed_lateness_ns
        ):
            raise ValueError(
                "the recovery snapshot was taken with timeframes "
                f"{','.join(agg.timeframe_names)} and an allowed lateness of"
                f" {agg.allowed_lateness_ns} ns; start with those settings, or remove the"
                " recovery directory to start afresh"
            )
        if state.indicators.specs != options.indicators:
            log.warning("indicators changed since the snapshot: they start again from empty")
            state.indicators = IndicatorBook(options.indicators)
        agg.set_spike_filter(options.spike_filter)
        return state


class CandleLogic(StatefulBatchLogic[RawMessage, FlowOutput, bytes]):
    """Bytewax logic of one shard; see the module docstring."""

    def __init__(self, options: FlowOptions, resume: bytes | None) -> None:
        self.options = options
        self.state = ShardState.resumed(resume, options) if resume else ShardState(options)
        self._decoder = TradeDecoder(max_future_ns=options.max_future_ns)
        self._throttle = FormingThrottle(options.forming_interval_ns)
        now = options.now_ns()
        self._anchor_event_ns = self.state.aggregator.max_event_ns
        self._anchor_wall_ns = now
        self._idle_check_ns = now + options.idle_after_ns

    # Bytewax callbacks -------------------------------------------------------------------

    def on_batch(self, values: list[RawMessage]) -> tuple[list[FlowOutput], bool]:
        now = self.options.now_ns()
        decoded = self._decoder.decode(
            [(key_of_trades_subject(m.subject), m.data) for m in values], now_ns=now
        )
        letters = [
            DeadLetter.of(r, values[m].subject)
            for m, r in decoded.rejected
        ]
        agg = self.state.aggregator
        before = agg.max_event_ns
        result = agg.add_batch(decoded.batch)
        letters += self._unapplied(result)
        counts = _count_letters(letters)
        counts["messages"] = len(values)
        counts["trades"] = int(np.count_nonzero(result.status == 0))
        counts["duplicates"] = result.duplicates
        if counts["trades"]:
            self._anchor_event_ns = max(before, agg.max_event_ns)
            self._anchor_wall_ns = now
            self._idle_check_ns = now + self.options.idle_after_ns
        acks = [m.reply for m in values if m.reply]
        return [self._output(result, now, letters, acks, counts)], self.RETAIN

    def on_notify(self) -> tuple[list[FlowOutput], bool]:
        now = self.options.now_ns()
        outputs: list[FlowOutput] = []
        agg = self.state.aggregator
        if agg.markets and now >= self._idle_check_ns:
            self._idle_check_ns = now + _IDLE_TICK_NS
            target = self._anchor_event_ns + (now - self._anchor_wall_ns)
            if target > agg.max_event_ns:
                result = agg.advance(target)
                if len(result.updates) or len(result.final):
                    outputs.append(self._output(result, now, [], [], {}))
        held = self._throttle.due_pending(now)
        if len(held):
            n_tf = len(agg.timeframes)
            current = [agg.current(int(s) // n_tf, int(s) % n_tf) for s in held.tolist()]
            updates = [c for c in current if c is not None]
            if updates:
                outputs.append(FlowOutput([], updates, [], []))
        return outputs, self.RETAIN

    def on_eof(self) -> tuple[list[FlowOutput], bool]:
        # A live stream's "end" is only a shutdown: its forming candles stay open.
        if not self.options.flush_at_eof:
            return [], self.RETAIN
        result = self.state.aggregator.flush()
        return [self._output(result, self.options.now_ns(), [], [], {})], self.RETAIN

    def notify_at(self) -> datetime | None:
        times = [self._throttle.next_due_ns()]
        if self.state.aggregator.markets:
            times.append(self._idle_check_ns)
        due = min((t for t in times if t is not None), default=None)
        return None if due is None else datetime.fromtimestamp(due / 1e9, UTC)

    def snapshot(self) -> bytes:
        if self.options.on_snapshot is not None:
            self.options.on_snapshot()
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)

    # Outputs -----------------------------------------------------------------------------

    def _unapplied(self, result: AddResult) -> list[DeadLetter]:
        batch = result.batch
        letters = []
        watermark = self.state.aggregator.watermark_ns
        for row in result.rows(LATE).tolist():
            trade = batch.trade(row)
            letters.append(DeadLetter.of(
                Rejected.of("late", f"ts {trade.ts} is older than the watermark {watermark}",
                            encode(trade)),
                trades_subject(trade.exchange, trade.symbol),
            ))
        sigmas = self.options.spike_filter.sigmas
        for row in result.rows(SPIKE).tolist():
            trade = batch.trade(row)
            detail = f"price {trade.price!r} jumps more than {sigmas:g} sigma of recent returns"
            letters.append(DeadLetter.of(
                Rejected.of("spike", detail, encode(trade)),
                trades_subject(trade.exchange, trade.symbol),
            ))
        return letters

    def _output(
        self,
        result: AddResult,
        now: int,
        letters: list[DeadLetter],
        acks: list[str],
        counts: dict[str, int],
    ) -> FlowOutput:
        updates = result.updates
        n_tf = len(self.state.aggregator.timeframes)
        closed_rows = np.flatnonzero(updates.closed)
        closed = updates.take(closed_rows)
        stored = closed.to_candles()
        published = list(stored)
        self._throttle.settled(closed.market * n_tf + closed.timeframe)
        indicators, extra = self._indicators(result.final, closed, published)
        published += extra
        forming_rows = np.flatnonzero(~updates.closed)
        if len(forming_rows):
            forming = updates.take(forming_rows)
            due = self._throttle.take(forming.market * n_tf + forming.timeframe, now)
            published += forming.take(due).to_candles()
        if stored:
            counts["candles_closed"] = len(stored)
        if indicators:
            counts["indicator_values"] = sum(len(row.values) for row in indicators)
        return FlowOutput(stored, published, letters, acks, indicators, counts)

    def _indicators(
        self, final: CandleColumns, closed: CandleColumns, published: list[Candle]
    ) -> tuple[list[IndicatorValues], list[Candle]]:
        """Update indicators with the final candles; attach their values to the closed
        candles published in this output, or publish the final candle again with them."""
        if not len(final):
            return [], []
        values = self.state.indicators.update(final, self.options.history)
        position = {
            key: i for i, key in enumerate(zip(
                closed.market.tolist(), closed.timeframe.tolist(), closed.ts.tolist(),
                strict=True,
            ))
        }
        rows: list[IndicatorValues] = []
        extra: list[Candle] = []
        finals = final.to_candles()
        keys = zip(final.market.tolist(), final.timeframe.tolist(), strict=True)
        for candle, (market, timeframe), outputs in zip(finals, keys, values, strict=True):
            if outputs:
                rows.append(IndicatorValues(
                    candle.exchange, candle.symbol, candle.timeframe, candle.ts, outputs
                ))
            i = position.get((market, timeframe, candle.ts))
            if i is not None:
                published[i] = msgspec.structs.replace(published[i], indicators=outputs)
            else:
                extra.append(msgspec.structs.replace(candle, indicators=outputs))
        return rows, extra


def warm_up(options: FlowOptions) -> None:
    """Load the compiled kernels (from numba's cache, or compile them) before any message
    arrives, so the first batch is not slowed by it."""
    logic = CandleLogic(dataclasses.replace(options, history=None), None)
    now = options.now_ns()
    trades = [Trade("warm", "UP-USDT", now - 2 * 10**9 + i, 1.0, 1.0, "buy", str(i + 1))
              for i in range(2)]
    logic.on_batch([RawMessage("trades.warm.UP-USDT", encode(trades), "")])
    logic.state.indicators.update(logic.state.aggregator.flush().final)


def compile_kernels() -> None:
    """Compile the flow's numba kernels into numba's cache (`__pycache__`), as an image build
    may do: the first start otherwise spends about ten seconds on it. Any settings share the
    same compiled code."""
    warm_up(FlowOptions(
        timeframes=parse_timeframes(list(STANDARD_TIMEFRAMES)),
        allowed_lateness_ns=5 * 10**9,
        indicators=DEFAULT_INDICATORS,
        forming_interval_ns=0,
        spike_filter=SpikeFilter(sigmas=4.0),
        max_future_ns=60 * 10**9,
        flush_at_eof=False,
        now_ns=time.time_ns,
    ))


def _count_letters(letters: Sequence[DeadLetter]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for letter in letters:
        key = f"dead_letters.{letter.reason}"
        counts[key] = counts.get(key, 0) + 1
    return counts
