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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from db.indicator_store import IndicatorValues
from db.store import Store, StoreError
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
        store: Store,
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
        store: Store,
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


@dataclass(frozen=True, slots=True)
class HistoryWrite:
    """What one `HistoryWriter.write` stored: candles, candles whose indicators it wrote (the
    new ones and the stored ones folded in again), and of those the stored ones."""

    candles: int
    indicator_rows: int
    refolded: int


class HistoryWriter:
    """Writes closed history candles with their indicators to `store` (see the module
    docstring). Indicators are `specs`; none writes candles only."""

    def __init__(
        self, store: Store, specs: Sequence[IndicatorSpec], *, read_chunk: int = READ_CHUNK
    ) -> None:
        self.store = store
        self.specs = tuple(specs)
        self._history = StoredHistory.for_indicators(store, self.specs)
        self._book = IndicatorBook(self.specs)
        self._read_chunk = read_chunk
        self._markets: list[tuple[str, str]] = []
        self._timeframes: list[str] = []
        self._last: dict[Series, int] = {}

    def write(self, candles: Sequence[Candle], *, through_ns: int | None = None) -> HistoryWrite:
        """Store closed `candles` (any series, any order; a later one with the same key wins)
        and their indicators, then fold in again the stored candles that follow them up to
        `through_ns` (exclusive; None: to the end of each series)."""
        by_series: dict[Series, dict[int, Candle]] = {}
        for candle in candles:
            if not candle.closed:
                raise ValueError(
                    f"history candles must be closed; {candle.exchange}:{candle.symbol}"
                    f" {candle.timeframe} at ts={candle.ts} is still forming"
                )
            by_series.setdefault((candle.exchange, candle.symbol, candle.timeframe), {})[
                candle.ts
            ] = candle
        written = rows = refolded = 0
        for series, new in sorted(by_series.items()):
            ordered = [new[ts] for ts in sorted(new)]
            series_rows, series_refolded = self._write_indicators(series, ordered, through_ns)
            self.store.upsert_candles(ordered)
            written += len(ordered)
            rows += series_rows
            refolded += series_refolded
        return HistoryWrite(written, rows, refolded)

    def _write_indicators(
        self, series: Series, new: list[Candle], through_ns: int | None
    ) -> tuple[int, int]:
        """Fold the new candles and the stored ones around them into the series' indicators
        and write their values; return (rows written, stored candles folded in again)."""
        exchange, symbol, timeframe = series
        market, frame = self._index(exchange, symbol, timeframe)
        first, last_new = new[0].ts, new[-1].ts
        folded = self._last.get(series)
        if folded is None or first <= folded:
            # A new series, or one written out of order: start it again, warmed from the
            # candles stored before its first new one.
            self._book.discard(market, frame)
            start = first
        else:
            start = folded + 1
        end = None if through_ns is None else max(through_ns, last_new + 1)
        rows = refolded = 0
        last = folded
        for chunk, stored in self._merged(series, new, start, end):
            columns = CandleColumns.from_candles(chunk, self._markets, self._timeframes)
            outputs = self._book.update(columns, self._history)
            values = []
            for candle, output, was_stored in zip(chunk, outputs, stored, strict=True):
                if was_stored:
                    # Every name, NaN included: a value this candle no longer has is removed.
                    output = {key: output.get(key, math.nan) for key in self._book.keys}
                if output:
                    values.append(IndicatorValues(exchange, symbol, timeframe, candle.ts, output))
            if values and self.specs:
                self.store.upsert_indicator_values(values)
            rows += len(values)
            refolded += sum(stored)
            last = chunk[-1].ts
        if last is not None:
            self._last[series] = last
        return rows, refolded

    def _merged(
        self, series: Series, new: list[Candle], start: int, end: int | None
    ) -> Iterator[tuple[list[Candle], list[bool]]]:
        """The new candles and the stored closed ones in [start, end), in time order (a new
        candle replaces a stored one of the same ts), in chunks: each with, per candle,
        whether it is a stored one."""
        pending = iter(new)
        upcoming = next(pending, None)
        cursor = start
        while True:
            stored = self.store.candles(
                *series, start_ns=cursor, end_ns=end, limit=self._read_chunk, from_start=True
            )
            chunk: list[Candle] = []
            flags: list[bool] = []
            bound = stored[-1].ts if len(stored) == self._read_chunk else None
            for candle in stored:
                while upcoming is not None and upcoming.ts < candle.ts:
                    chunk.append(upcoming)
                    flags.append(False)
                    upcoming = next(pending, None)
                if upcoming is not None and upcoming.ts == candle.ts:
                    chunk.append(upcoming)  # replaces the stored one
                    flags.append(False)
                    upcoming = next(pending, None)
                elif candle.closed:
                    chunk.append(candle)
                    flags.append(True)
            if bound is None:
                # The last stored chunk: every new candle left comes after it.
                while upcoming is not None:
                    chunk.append(upcoming)
                    flags.append(False)
                    upcoming = next(pending, None)
            if chunk:
                yield chunk, flags
            if bound is None:
                return
            cursor = bound + 1

    def _index(self, exchange: str, symbol: str, timeframe: str) -> tuple[int, int]:
        if (exchange, symbol) not in self._markets:
            self._markets.append((exchange, symbol))
        if timeframe not in self._timeframes:
            self._timeframes.append(timeframe)
        return self._markets.index((exchange, symbol)), self._timeframes.index(timeframe)
