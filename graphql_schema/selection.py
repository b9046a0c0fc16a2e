"""A candle selection: the market, timeframe, range, page size and cursor of a candles query.

Built once from the arguments (every check raises `BadArgument` naming its argument), then read
from the store. Pages are keyset pages on `ts`:

- no cursor: the newest `limit` candles with start <= ts < end (with `from_start`, the oldest);
- `after`: the oldest `limit` candles newer than the cursor's (paging forwards);
- `before`: the newest `limit` candles older than the cursor's (paging backwards).

Every page is oldest first. A timeframe that is not stored is resampled by the store from the
widest stored timeframe that divides it (`source`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol

import polars as pl

from graphql_schema.arguments import (
    check_limit,
    check_market,
    check_range,
    source_timeframe,
)
from graphql_schema.context import CandleReader, Limits
from graphql_schema.cursors import decode_cursor
from graphql_schema.errors import BadArgument
from market.messages import Candle
from market.timeframes import Timeframe

DEFAULT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Page[Rows: (list[Candle], pl.DataFrame)]:
    """Candles oldest first (objects, or columns as `db.store.CANDLE_SCHEMA`), and whether the
    range holds candles before and after them."""

    candles: Rows
    has_previous: bool
    has_next: bool

    @property
    def first_ts(self) -> int | None:
        return self._ts(0)

    @property
    def last_ts(self) -> int | None:
        return self._ts(-1)

    def _ts(self, index: int) -> int | None:
        if len(self.candles) == 0:
            return None
        if isinstance(self.candles, pl.DataFrame):
            return int(self.candles["ts"][index])
        return self.candles[index].ts


@dataclass(frozen=True, slots=True)
class CandleSelection:
    exchange: str
    symbol: str
    timeframe: str
    #: Stored timeframe to resample from, or None when `timeframe` is stored.
    source: str | None
    start_ns: int | None
    end_ns: int | None
    limit: int
    after_ns: int | None = None
    before_ns: int | None = None
    from_start: bool = False

    @classmethod
    def parse(
        cls,
        limits: Limits,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
        before: str | None = None,
        from_start: bool = False,
    ) -> CandleSelection:
        check_market(exchange, symbol)
        source = source_timeframe(timeframe, limits)
        limit = min(DEFAULT_LIMIT, limits.max_candles) if limit is None else limit
        check_limit(limit, limits)
        start_ns, end_ns = check_range(start, end)
        if after is not None and before is not None:
            raise BadArgument("before", "give after (to page forwards) or before, not both")
        if from_start and (after is not None or before is not None):
            raise BadArgument("fromStart", "a cursor sets the direction; drop fromStart")
        return cls(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            source=source,
            start_ns=start_ns,
            end_ns=end_ns,
            limit=limit,
            after_ns=decode_cursor("after", after) if after is not None else None,
            before_ns=decode_cursor("before", before) if before is not None else None,
            from_start=from_start,
        )

    @property
    def cost(self) -> int:
        """Rows the store reads for it: `limit`, times the timeframe ratio when resampled."""
        if self.source is None:
            return self.limit
        return self.limit * (Timeframe.parse(self.timeframe).ns // Timeframe.parse(self.source).ns)

    def read(self, store: CandleReader) -> list[Candle]:
        """The selected candles, oldest first."""
        return self._read(store, *self._page_bounds(), self.limit, from_start=self._forwards)

    def page(self, store: CandleReader) -> Page[list[Candle]]:
        """The selected candles, and whether the range goes on before and after them."""
        return self._page(store, self._read)

    def page_frame(
        self, store: CandleReader, columns: Sequence[str] | None = None
    ) -> Page[pl.DataFrame]:
        """`page` as columns: no Python object per candle (the chart series path). Only
        `columns` (and `ts`) are read when given: each costs a Python object per candle."""
        return self._page(store, partial(self._read_frame, columns=columns))

    def _page[Rows: (list[Candle], pl.DataFrame)](
        self, store: CandleReader, read: _Reader[Rows]
    ) -> Page[Rows]:
        # One candle more than asked says whether the range goes on in the paging direction;
        # one candle on the other side of the cursor says whether it goes on the other way.
        start, end = self._page_bounds()
        rows = read(store, start, end, self.limit + 1, from_start=self._forwards)
        extra = len(rows) > self.limit
        if self._forwards:
            rows = rows[: self.limit]
            before = self.after_ns is not None and bool(
                self._read(store, self.start_ns, self.after_ns + 1, 1, from_start=False)
            )
            return Page(rows, has_previous=before, has_next=extra)
        rows = rows[len(rows) - min(len(rows), self.limit):]
        has_next = False
        if self.before_ns is not None:
            has_next = bool(self._read(store, self.before_ns, self.end_ns, 1, from_start=True))
        return Page(rows, has_previous=extra, has_next=has_next)

    @property
    def _forwards(self) -> bool:
        return self.after_ns is not None or self.from_start

    def _page_bounds(self) -> tuple[int | None, int | None]:
        """The [start, end) that the page is read from, cursor applied."""
        if self.after_ns is not None:
            start = self.after_ns + 1
            return (start if self.start_ns is None else max(self.start_ns, start)), self.end_ns
        end = self.end_ns
        if self.before_ns is not None:
            end = self.before_ns if end is None else min(end, self.before_ns)
        return self.start_ns, end

    def read_before(self, store: CandleReader, ts_ns: int, count: int) -> list[Candle]:
        """Up to `count` candles just before `ts_ns`, ignoring the range: warm-up for indicators."""
        return self._read(store, None, ts_ns, count, from_start=False)

    def _read(
        self,
        store: CandleReader,
        start_ns: int | None,
        end_ns: int | None,
        limit: int,
        *,
        from_start: bool,
    ) -> list[Candle]:
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            return []
        if self.source is None:
            return store.candles(
                self.exchange, self.symbol, self.timeframe,
                start_ns=start_ns, end_ns=end_ns, limit=limit, from_start=from_start,
            )
        return store.resample(
            self.exchange, self.symbol, self.source, self.timeframe,
            start_ns=start_ns, end_ns=end_ns, limit=limit, from_start=from_start,
        )

    def _read_frame(
        self,
        store: CandleReader,
        start_ns: int | None,
        end_ns: int | None,
        limit: int,
        *,
        from_start: bool,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        if self.source is not None:
            rows = self._read(store, start_ns, end_ns, limit, from_start=from_start)
            names = [n for n in _FRAME_COLUMNS if n == "ts" or columns is None or n in columns]
            return pl.DataFrame(
                {name: [getattr(c, name) for c in rows] for name in names},
                schema={name: _INT_COLUMNS.get(name, pl.Float64) for name in names},
            )
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            limit = 0
        return store.candles_frame(
            self.exchange, self.symbol, self.timeframe, start_ns, end_ns,
            limit=limit, from_start=from_start, columns=columns,
        )


class _Reader[Rows](Protocol):
    def __call__(
        self,
        store: CandleReader,
        start_ns: int | None,
        end_ns: int | None,
        limit: int,
        *,
        from_start: bool,
    ) -> Rows: ...


#: The store's frame columns (`db.store.CANDLE_SCHEMA`), for frames of resampled candles.
_FRAME_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "trades", "vwap")
_INT_COLUMNS = {"ts": pl.Int64, "trades": pl.Int64}
