"""Indicators over stored candle history, by the same engine as the live flow's.

- `StoredHistory` reads the stored tail of a series: its newest closed candles before a time.
  It is the `market.indicator_book.History` that warms a series' indicators, in the live flow
  (a market met for the first time since start-up, with its history in the store) and in
  `HistoryWriter`.
- `HistoryWriter` writes closed candles of history (an exchange's candles from `candlegraph
  backfill`, candles built from an imported file) and their indicators, computed by
  `market.indicator_book.IndicatorBook` warmed from the candles stored before them.

Candles written before (or between) stored ones change the indicators of the stored candles
that follow, so the writer folds those in again and rewrites their values: up to
`through_ns` (where the caller's next write will start), or to the end of the series. Each
write stores the indicator values first and the candles last, so an interrupted writer
leaves at worst values for candles not yet stored, which the next write of those candles
recomputes: a caller that resumes by looking at the stored candles loses nothing.

Within one writer a series' indicators carry on from one write to the next (no new warm-up),
so writing a history in pages gives the values of writing it at once.

Candles go through as columns (`market.candle_columns.CandleColumns`, as the aggregator and
a file give them): folded by the book a series at a time, written with
`upsert_candle_columns`, and their indicators as one `db.columns.IndicatorTable` per piece,
without a `Candle` or a dict per candle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from db.candle_store import CandleStore
from db.columns import IndicatorTable
from db.store import StoreError
from flows.write_behind import WriteBehind
from market.arrays import Bools
from market.candle_columns import CandleColumns
from market.indicator_book import IndicatorBook, warm_candles
from market.indicators import IndicatorSpec
from market.messages import Candle

log = logging.getLogger(__name__)

Series = tuple[str, str, str]

#: Stored candles read per query when folding a long stretch again.
READ_CHUNK = 50_000


class StoredHistory:
    """The newest closed candles of a series before a time, read from `store` (at most
    `count`, oldest first).

    For a live flow: `best_effort` logs a store error and gives no history, so the flow goes
    on with cold indicators rather than stopping; `stored_markets_only` looks the stored
    markets up once, at the first call, and reads history only for those, so a flow on
    markets with no history (a first start) makes no read per series.
    """

    def __init__(
        self,
        store: CandleStore,
        *,
        count: int,
        best_effort: bool = False,
        stored_markets_only: bool = False,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0 candles, got {count}")
        self.store = store
        self.count = count
        self.best_effort = best_effort
        self._only_stored = stored_markets_only
        self._markets: set[tuple[str, str]] | None = None

    @classmethod
    def for_indicators(
        cls,
        store: CandleStore,
        specs: Sequence[IndicatorSpec],
        *,
        best_effort: bool = False,
        stored_markets_only: bool = False,
    ) -> StoredHistory:
        """As many candles as warm these indicators (`market.indicator_book.warm_candles`)."""
        return cls(store, count=warm_candles(specs), best_effort=best_effort,
                   stored_markets_only=stored_markets_only)

    def __call__(self, exchange: str, symbol: str, timeframe: str, before_ns: int) -> list[Candle]:
        try:
            if self._only_stored:
                if self._markets is None:
                    self._markets = set(self.store.symbols())
                if (exchange, symbol) not in self._markets:
                    return []
            candles = self.store.candles(
                exchange, symbol, timeframe, end_ns=before_ns, limit=self.count
            )
        except StoreError as error:
            if not self.best_effort:
                raise
            log.warning(
                "cannot read the stored history of %s:%s %s to warm its indicators; they"
                " start cold: %s", exchange, symbol, timeframe, error,
            )
            return []
        return [c for c in candles if c.closed]


class HistoryStore(CandleStore, Protocol):
    """What `HistoryWriter` needs of a store (both stores offer it): candles, and indicator
    tables."""

    def upsert_indicator_table(self, table: IndicatorTable) -> None: ...


@dataclass(frozen=True, slots=True)
class HistoryWrite:
    """What one `HistoryWriter.write` stored: candles, candles whose indicators it wrote (the
    new ones and the stored ones folded in again), and of those the stored ones."""

    candles: int
    indicator_rows: int
    refolded: int


class HistoryWriter:
    """Writes closed history candles with their indicators to `store` (see the module
    docstring). Indicators are `specs`; none writes candles only.

    With `behind`, the store writes run on its thread while `write` returns to fold the next
    candles (the caller waits for them with `behind.wait()`); a write that reads stored
    candles it may have handed over (warming a series, or candles before those written)
    waits for them first. Reads of later candles need not: a write only changes candles up
    to the last one it folded."""

    def __init__(
        self, store: HistoryStore, specs: Sequence[IndicatorSpec], *,
        read_chunk: int = READ_CHUNK, behind: WriteBehind | None = None,
    ) -> None:
        self.store = store
        self.behind = behind
        self.specs = tuple(specs)
        self._history = StoredHistory.for_indicators(store, self.specs)
        self._book = IndicatorBook(self.specs)
        self._read_chunk = read_chunk
        self._markets: list[tuple[str, str]] = []
        self._timeframes: list[str] = []
        self._last: dict[Series, int] = {}

    def write(
        self, candles: Sequence[Candle] | CandleColumns, *, through_ns: int | None = None
    ) -> HistoryWrite:
        """Store closed `candles` (any series, any order; a later one with the same key wins)
        and their indicators, then fold in again the stored candles that follow them up to
        `through_ns` (exclusive; None: to the end of each series)."""
        columns = candles if isinstance(candles, CandleColumns) else _columns(candles)
        if not len(columns):
            return HistoryWrite(0, 0, 0)
        forming = np.flatnonzero(~columns.closed)
        if len(forming):
            c = columns.take(forming[:1]).to_candles()[0]
            raise ValueError(
                f"history candles must be closed; {c.exchange}:{c.symbol} {c.timeframe}"
                f" at ts={c.ts} is still forming"
            )
        written = rows = refolded = 0
        for series, new in _by_series(columns):
            series_rows, series_refolded = self._write_indicators(series, new, through_ns)
            self._store(partial(self.store.upsert_candle_columns, new))
            written += len(new)
            rows += series_rows
            refolded += series_refolded
        return HistoryWrite(written, rows, refolded)

    def _write_indicators(
        self, series: Series, new: CandleColumns, through_ns: int | None
    ) -> tuple[int, int]:
        """Fold the new candles and the stored ones around them into the series' indicators
        and write their values; return (rows written, stored candles folded in again)."""
        exchange, symbol, timeframe = series
        market, frame = self._index(exchange, symbol, timeframe)
        first, last_new = int(new.ts[0]), int(new.ts[-1])
        folded = self._last.get(series)
        if folded is None or first <= folded:
            # A new series, or one written out of order: start it again, warmed from the
            # candles stored before its first new one (once those handed over are stored).
            if self.behind is not None:
                self.behind.wait()
            self._book.discard(market, frame)
            start = first
        else:
            start = folded + 1
        end = None if through_ns is None else max(through_ns, last_new + 1)
        rows = refolded = 0
        last = folded
        for chunk, stored in self._merged(series, new, start, end):
            indexed = CandleColumns(
                self._markets, self._timeframes, np.full(len(chunk), market, np.int64),
                np.full(len(chunk), frame, np.int64), *(getattr(chunk, name) for name in (
                    "ts", "open", "high", "low", "close", "volume", "trades", "vwap", "closed"
                )),
            )
            values = self._book.fold(indexed, self._history)
            # A stored candle's row is written whole (a value it no longer has is removed);
            # a new one's only when it has a value.
            keep: Bools = np.zeros(len(chunk), np.bool_)
            if self.specs:
                keep = stored | np.isfinite(values).any(axis=1)
            if keep.any():
                rows_kept = slice(None) if keep.all() else keep  # a slice copies nothing
                self._store(partial(self.store.upsert_indicator_table, IndicatorTable(
                    exchange, symbol, timeframe, self._book.keys, chunk.ts[rows_kept],
                    values[rows_kept], stored[rows_kept],
                )))
            rows += int(np.count_nonzero(keep))
            refolded += int(np.count_nonzero(stored))
            last = int(chunk.ts[-1])
        if last is not None:
            self._last[series] = last
        return rows, refolded

    def _merged(
        self, series: Series, new: CandleColumns, start: int, end: int | None
    ) -> Iterator[tuple[CandleColumns, np.ndarray]]:
        """The new candles and the stored closed ones in [start, end), in time order (a new
        candle replaces a stored one of the same ts), in chunks: each with, per candle,
        whether it is a stored one."""
        taken = 0
        cursor = start
        while True:
            stored = self.store.candles(
                *series, start_ns=cursor, end_ns=end, limit=self._read_chunk, from_start=True
            )
            bound = stored[-1].ts if len(stored) == self._read_chunk else None
            # The new candles up to the last stored one read (all that are left, after the
            # last stored chunk).
            upto = len(new) if bound is None else int(
                np.searchsorted(new.ts, bound, side="right")
            )
            fresh = new.take(slice(taken, upto)) if upto > taken else None
            taken = max(taken, upto)
            kept = [c for c in stored if c.closed]
            if fresh is not None and kept:
                replaced = set(fresh.ts.tolist())
                kept = [c for c in kept if c.ts not in replaced]
            if fresh is not None and not kept:  # nothing stored here: the new ones as they are
                yield fresh, np.zeros(len(fresh), np.bool_)
            elif kept:
                chunk = CandleColumns.concat(
                    [fresh, _columns(kept, new)] if fresh is not None else [_columns(kept, new)]
                )
                flags = np.zeros(len(chunk), np.bool_)
                flags[len(chunk) - len(kept):] = True
                order = np.argsort(chunk.ts, kind="stable")
                yield chunk.take(order), flags[order]
            if bound is None:
                return
            cursor = bound + 1

    def _store(self, write: partial[None]) -> None:
        if self.behind is None:
            write()
        else:
            self.behind.submit(write)

    def _index(self, exchange: str, symbol: str, timeframe: str) -> tuple[int, int]:
        if (exchange, symbol) not in self._markets:
            self._markets.append((exchange, symbol))
        if timeframe not in self._timeframes:
            self._timeframes.append(timeframe)
        return self._markets.index((exchange, symbol)), self._timeframes.index(timeframe)


def _columns(candles: Sequence[Candle], like: CandleColumns | None = None) -> CandleColumns:
    """Candles as columns, indexed by the markets and timeframes of `like` when given (they
    must be listed there) or by their own."""
    if like is not None:
        return CandleColumns.from_candles(candles, like.markets, like.timeframe_names)
    markets = sorted({(c.exchange, c.symbol) for c in candles})
    names = sorted({c.timeframe for c in candles})
    return CandleColumns.from_candles(candles, markets, names)


def _by_series(columns: CandleColumns) -> Iterator[tuple[Series, CandleColumns]]:
    """Each series' candles, in time order, one per ts (the last given wins), the series in
    (exchange, symbol, timeframe) order."""
    width = len(columns.timeframe_names)
    keys = columns.market * width + columns.timeframe
    ts = columns.ts
    if keys.min() == keys.max() and bool((ts[1:] > ts[:-1]).all()):
        # One series in time order (a page of an import): as it is.
        market, frame = divmod(int(keys[0]), width)
        yield (*columns.markets[market], columns.timeframe_names[frame]), columns
        return
    found = []
    for key in np.unique(keys).tolist():
        market, frame = divmod(key, width)
        found.append(((*columns.markets[market], columns.timeframe_names[frame]), key))
    for series, key in sorted(found):
        rows = np.flatnonzero(keys == key)
        rows = rows[np.argsort(ts[rows], kind="stable")]
        times = ts[rows]
        last_of_each = np.append(times[1:] != times[:-1], True)
        yield series, columns.take(rows[last_of_each])
