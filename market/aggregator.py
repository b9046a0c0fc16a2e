"""Candle aggregation: folds trades into OHLCV candles for several timeframes, by event time.

Rules (ARCHITECTURE.md, "Rules of aggregation"):
- A trade lands in the bucket of each timeframe that holds its exchange timestamp.
- A forming candle closes when a trade of a later bucket arrives for its symbol, or when the
  watermark (the latest trade time this aggregator has accepted, from any of its symbols,
  minus the allowed lateness) passes its end, so quiet symbols still close.
- A trade older than the watermark is late: it is returned to the caller, unapplied.
  A trade within the lateness amends its candle; an amended closed candle is re-emitted, closed.
- A trade id already accepted for the same exchange and symbol is a duplicate and is dropped.
  Ids are remembered until the watermark passes their trade's time (after that, a repeat is
  late anyway), so memory stays bounded by the lateness window.
- A candle is *final* once the watermark passes its end: no trade can change it any more.
  Each candle is reported final exactly once, in time order per symbol and timeframe; this is
  when indicators take it (so they never need correcting).
- With a `SpikeFilter`, a trade whose price jumps too far is not applied and reported.

Arithmetic is a plain sequential fold in arrival order (compiled by numba, without fast-math,
in `market.candle_kernel`), so a candle equals, to the last bit, a batch aggregation that folds
the same accepted trades in the same order. `vwap` is the sum of price times size over the
volume (the close when the volume is zero). Results do not depend on how trades are split into
`add` calls. State is numpy arrays and pickles (Bytewax snapshots it).

    agg = CandleAggregator(parse_timeframes("1s,1m"), allowed_lateness_ns=5 * 10**9)
    result = agg.add(trades)            # or agg.add_batch(TradeBatch) for columns
    result.candles                      # every candle the call changed, latest state, once
    result.final.to_candles()           # candles that became final in this call
    result.late, result.duplicates      # what was not applied
    agg.advance(event_ns)               # an idle stream: move event time, close what it passes
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from market import candle_kernel as kernel
from market.arrays import Bools, Floats, Int8s, Int32s, Ints
from market.candle_columns import CandleColumns
from market.messages import Candle, Trade
from market.spike_filter import SpikeFilter
from market.timeframes import Timeframe
from market.trade_batch import TradeBatch

Key = tuple[str, str]

ACCEPTED, LATE, DUPLICATE, SPIKE = kernel.ACCEPTED, kernel.LATE, kernel.DUPLICATE, kernel.SPIKE

_NO_INT = np.empty(0, np.int64)
_NO_BOOL = np.empty(0, np.bool_)
_MIN_ID_TABLE = 1 << 12


@dataclass(frozen=True, slots=True)
class AddResult:
    """What one call produced: candle updates, final candles, and each trade's fate.

    `updates` holds every candle the call changed (each once, in its latest state), including
    those it closed; `final` the candles that became final, in time order per series;
    `status[i]` is `ACCEPTED`, `LATE`, `DUPLICATE` or `SPIKE` for the call's i-th trade.
    """

    updates: CandleColumns
    final: CandleColumns
    status: Int8s
    batch: TradeBatch

    @property
    def candles(self) -> list[Candle]:
        return self.updates.to_candles()

    def rows(self, fate: int) -> Ints:
        """Indices of the trades with this fate."""
        return np.flatnonzero(self.status == fate)

    @property
    def late(self) -> list[Trade]:
        return [self.batch.trade(int(i)) for i in self.rows(LATE)]

    @property
    def spikes(self) -> list[Trade]:
        return [self.batch.trade(int(i)) for i in self.rows(SPIKE)]

    @property
    def duplicates(self) -> int:
        return int(np.count_nonzero(self.status == DUPLICATE))


class CandleAggregator:
    """Folds trades of any number of symbols into candles of several timeframes. No I/O."""

    _slot_f: Floats
    _slot_i: Ints
    _series_i: Ints
    _spike_f: Floats
    _spike_i: Ints

    def __init__(
        self,
        timeframes: Sequence[Timeframe],
        *,
        allowed_lateness_ns: int = 5_000_000_000,
        spike_filter: SpikeFilter | None = None,
    ) -> None:
        if not timeframes:
            raise ValueError("CandleAggregator needs at least one timeframe")
        if allowed_lateness_ns < 0:
            raise ValueError(f"allowed_lateness_ns must be >= 0, got {allowed_lateness_ns}")
        self.timeframes = tuple(sorted(timeframes))
        self.timeframe_names = tuple(tf.name for tf in self.timeframes)
        self.allowed_lateness_ns = allowed_lateness_ns
        self.spike_filter = spike_filter or SpikeFilter()
        self._spike_params = self.spike_filter.params()
        self._tf_ns = np.array([tf.ns for tf in self.timeframes], np.int64)
        # Enough slots per series that a bucket's slot is reused only once it is final.
        self._slots = int(max(-(-allowed_lateness_ns // tf.ns) for tf in self.timeframes)) + 2
        self._keys: list[Key] = []
        self._index: dict[Key, int] = {}
        self._clock = np.array([0, allowed_lateness_ns, 0], np.int64)
        self._next_due = np.full(len(self.timeframes), np.iinfo(np.int64).max, np.int64)
        self._allocate_symbols(8)
        self._id_table, _ = kernel.id_table_rebuild(
            np.zeros((0, 3), np.int64), 0, _MIN_ID_TABLE
        )
        self._str_seen: dict[tuple[int, str], int] = {}
        self._str_order: deque[tuple[int, tuple[int, str]]] = deque()
        self._scratch()

    # State -------------------------------------------------------------------------------

    def _allocate_symbols(self, capacity: int) -> None:
        t, k = len(self.timeframes), self._slots
        old = getattr(self, "_slot_f", None)
        slot_f = np.zeros((capacity, t, k, 6), np.float64)
        slot_i = np.zeros((capacity, t, k, 3), np.int64)
        slot_i[:, :, :, 0] = kernel.EMPTY
        series_i = np.zeros((capacity, t, 2), np.int64)
        series_i[:, :, 0] = kernel.EMPTY
        spike_f = np.zeros((capacity, 2), np.float64)
        spike_i = np.zeros((capacity, 2), np.int64)
        spike_i[:, kernel.SP_COUNT] = -1
        if old is not None:
            n = old.shape[0]
            slot_f[:n] = self._slot_f
            slot_i[:n] = self._slot_i
            series_i[:n] = self._series_i
            spike_f[:n] = self._spike_f
            spike_i[:n] = self._spike_i
        self._slot_f, self._slot_i, self._series_i = slot_f, slot_i, series_i
        self._spike_f, self._spike_i = spike_f, spike_i
        self._touched = np.zeros(capacity * t * k, np.int64)

    def _scratch(self, rows: int = 0) -> None:
        # Output buffers reused across calls; not part of the pickled state.
        cells = self._slot_i.shape[0] * len(self.timeframes) * self._slots
        capacity = max(1024, cells + rows)
        self._upd_i = np.zeros((capacity, kernel.OUT_I_WIDTH), np.int64)
        self._upd_f = np.zeros((capacity, kernel.OUT_F_WIDTH), np.float64)
        self._fin_i = np.zeros((capacity, kernel.OUT_I_WIDTH), np.int64)
        self._fin_f = np.zeros((capacity, kernel.OUT_F_WIDTH), np.float64)

    def __getstate__(self) -> dict[str, Any]:
        skip = {"_upd_i", "_upd_f", "_fin_i", "_fin_f", "_touched"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        t, k = len(self.timeframes), self._slots
        self._touched = np.zeros(self._slot_i.shape[0] * t * k, np.int64)
        self._scratch()

    def _market(self, key: Key) -> int:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._keys)
            self._keys.append(key)
            if index >= self._slot_i.shape[0]:
                self._allocate_symbols(2 * self._slot_i.shape[0])
                self._scratch()
        return index

    @property
    def markets(self) -> Sequence[Key]:
        """Every (exchange, symbol) seen, in order of first appearance."""
        return self._keys

    @property
    def max_event_ns(self) -> int:
        """The latest event time accepted or advanced to."""
        return int(self._clock[0])

    @property
    def watermark_ns(self) -> int:
        """Trades older than this are late; candles ending at or before it are final."""
        return int(self._clock[0] - self._clock[1])

    # Folding -----------------------------------------------------------------------------

    def add(self, trades: Iterable[Trade]) -> AddResult:
        """Fold validated `Trade`s in order."""
        return self.add_batch(TradeBatch.from_trades(list(trades)))

    def add_batch(self, batch: TradeBatch) -> AddResult:
        """Fold a batch of trade columns in order."""
        n = len(batch)
        market_of = np.array([self._market(key) for key in batch.keys], np.int32)
        sym = market_of[batch.key_of] if n else np.empty(0, np.int32)
        self._reserve_ids(n)
        status = np.zeros(n, np.int8)
        str_rows: Ints = _NO_INT
        str_seen: Bools = _NO_BOOL
        str_prev: Ints = _NO_INT
        known: Bools = _NO_BOOL
        if batch.str_ids is not None:
            str_rows, str_seen, str_prev = self._string_id_flags(batch, sym)
            known = np.zeros(n, np.bool_)
        n_upd = n_fin = 0
        start = 0
        while True:
            start, n_upd, n_fin = kernel.fold(
                start, sym, batch.ts, batch.price, batch.size, batch.ids,
                str_seen, str_prev, known, status,
                self._tf_ns, self._clock, self._next_due,
                self._slot_f, self._slot_i, self._series_i, self._touched,
                self._id_table,
                self._spike_f, self._spike_i, self._spike_params,
                self._upd_i, self._upd_f, n_upd, self._fin_i, self._fin_f, n_fin,
            )
            if start >= n:
                break
            self._grow_outputs(n_upd, n_fin, n - start)
        if len(str_rows):
            self._remember_string_ids(batch, sym, status, str_rows)
        updates, final = self._close(n_upd, n_fin)
        return AddResult(updates, final, status, batch)

    def advance(self, event_ns: int) -> AddResult:
        """Move event time forward without a trade (an idle stream), closing what it passes."""
        if event_ns > self._clock[0]:
            self._clock[0] = event_ns
        updates, final = self._close(0, 0)
        return AddResult(updates, final, np.zeros(0, np.int8), TradeBatch.empty())

    def flush(self) -> AddResult:
        """Close and finalise every candle, as at the end of a finite input."""
        saved = int(self._clock[0])
        self._clock[0] = np.iinfo(np.int64).max // 2 + self._clock[1]
        self._next_due[:] = np.iinfo(np.int64).min
        try:
            updates, final = self._close(0, 0)
        finally:
            self._clock[0] = saved
        return AddResult(updates, final, np.zeros(0, np.int8), TradeBatch.empty())

    def current(self, market: int, timeframe: int) -> Candle | None:
        """The latest candle of one series while it still forms, else None."""
        if market >= len(self._keys) or self._series_i[market, timeframe, 1] != 1:
            return None
        start = int(self._series_i[market, timeframe, 0])
        k = (start // int(self._tf_ns[timeframe])) % self._slots
        f = self._slot_f[market, timeframe, k]
        count = int(self._slot_i[market, timeframe, k, 1])
        vwap = f[5] / f[4] if f[4] > 0 else f[3]
        exchange, symbol = self._keys[market]
        return Candle(
            exchange, symbol, self.timeframe_names[timeframe], start, float(f[0]), float(f[1]),
            float(f[2]), float(f[3]), float(f[4]), count, float(vwap), False,
        )

    def set_spike_filter(self, spike_filter: SpikeFilter) -> None:
        """Use other spike filter settings from now on (its per-symbol state carries on)."""
        self.spike_filter = spike_filter
        self._spike_params = spike_filter.params()

    # Internals ---------------------------------------------------------------------------

    def _grow_outputs(self, n_upd: int, n_fin: int, remaining: int) -> None:
        extra = max(self._upd_i.shape[0], remaining * len(self.timeframes))
        for name in ("_upd_i", "_upd_f", "_fin_i", "_fin_f"):
            old = getattr(self, name)
            grown = np.zeros((old.shape[0] + extra, old.shape[1]), old.dtype)
            grown[: old.shape[0]] = old
            setattr(self, name, grown)

    def _close(self, n_upd: int, n_fin: int) -> tuple[CandleColumns, CandleColumns]:
        cells = len(self._keys) * len(self.timeframes) * self._slots
        if n_upd + cells > self._upd_i.shape[0] or n_fin + cells > self._fin_i.shape[0]:
            self._grow_outputs(n_upd, n_fin, cells)
        n_upd, n_fin = kernel.close_passed(
            self._tf_ns, self._clock, self._next_due,
            self._slot_f, self._slot_i, self._series_i, self._touched,
            self._upd_i, self._upd_f, n_upd, self._fin_i, self._fin_f, n_fin, len(self._keys),
        )
        self._forget_string_ids()
        return (
            self._columns(self._upd_i[:n_upd], self._upd_f[:n_upd]),
            self._columns(self._fin_i[:n_fin], self._fin_f[:n_fin]),
        )

    def _columns(self, out_i: Ints, out_f: Floats) -> CandleColumns:
        if not len(out_i):
            return CandleColumns.empty(self._keys, self.timeframe_names)
        # One copy of each scratch block (reused by the next call); the columns are views.
        out_i = out_i.T.copy()
        out_f = out_f.T.copy()
        series = out_i[kernel.OUT_SLOT] // self._slots
        n_tf = len(self.timeframes)
        close, volume = out_f[3], out_f[4]
        vwap = close.copy()
        np.divide(out_f[5], volume, out=vwap, where=volume > 0)
        return CandleColumns(
            self._keys, self.timeframe_names, series // n_tf, series % n_tf,
            out_i[kernel.OUT_TS], out_f[0], out_f[1], out_f[2], close, volume,
            out_i[kernel.OUT_TRADES], vwap, out_i[kernel.OUT_CLOSED] != 0,
        )

    def _reserve_ids(self, incoming: int) -> None:
        capacity = self._id_table.shape[0]
        if self._clock[2] + incoming <= capacity // 2:
            return
        table, live = kernel.id_table_rebuild(self._id_table, self.watermark_ns, capacity)
        if live + incoming > capacity // 4:
            capacity = max(_MIN_ID_TABLE, 1 << int(4 * (live + incoming) - 1).bit_length())
            table, live = kernel.id_table_rebuild(table, self.watermark_ns, capacity)
        self._id_table = table
        self._clock[2] = live

    def _string_id_flags(
        self, batch: TradeBatch, sym: Int32s
    ) -> tuple[Ints, Bools, Ints]:
        assert batch.str_ids is not None
        n = len(batch)
        rows = np.flatnonzero(batch.ids < 0)
        seen = np.zeros(n, np.bool_)
        prev = np.full(n, -1, np.int64)
        last: dict[tuple[int, str], int] = {}
        memory = self._str_seen
        str_ids = batch.str_ids
        for row in rows.tolist():
            key = (int(sym[row]), str_ids[row] or "")
            seen[row] = key in memory
            prev[row] = last.get(key, -1)
            last[key] = row
        return rows, seen, prev

    def _remember_string_ids(
        self, batch: TradeBatch, sym: Int32s, status: Int8s, rows: Ints
    ) -> None:
        assert batch.str_ids is not None
        for row in rows.tolist():
            if status[row] in (ACCEPTED, SPIKE):
                key = (int(sym[row]), batch.str_ids[row] or "")
                ts = int(batch.ts[row])
                self._str_seen[key] = ts
                self._str_order.append((ts, key))

    def _forget_string_ids(self) -> None:
        order = self._str_order
        watermark = self.watermark_ns
        while order and order[0][0] < watermark:
            ts, key = order.popleft()
            if self._str_seen.get(key) == ts:
                del self._str_seen[key]
