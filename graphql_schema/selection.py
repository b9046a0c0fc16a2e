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

from dataclasses import dataclass
from datetime import datetime

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

DEFAULT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Page:
    """Candles oldest first, and whether the range holds candles before and after them."""

    candles: list[Candle]
    has_previous: bool
    has_next: bool


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

    def read(self, store: CandleReader) -> list[Candle]:
        """The selected candles, oldest first."""
        return self._read_page(store, self.limit)

    def page(self, store: CandleReader) -> Page:
        """The selected candles, and whether the range goes on before and after them."""
        # One candle more than asked says whether the range goes on in the paging direction;
        # one candle on the other side of the cursor says whether it goes on the other way.
        candles = self._read_page(store, self.limit + 1)
        extra = len(candles) > self.limit
        if self.after_ns is not None or self.from_start:
            if extra:
                candles.pop()
            before = self.after_ns is not None and bool(
                self._read(store, self.start_ns, self.after_ns + 1, 1, from_start=False)
            )
            return Page(candles, has_previous=before, has_next=extra)
        if extra:
            candles.pop(0)
        has_next = False
        if self.before_ns is not None:
            has_next = bool(self._read(store, self.before_ns, self.end_ns, 1, from_start=True))
        return Page(candles, has_previous=extra, has_next=has_next)

    def read_before(self, store: CandleReader, ts_ns: int, count: int) -> list[Candle]:
        """Up to `count` candles just before `ts_ns`, ignoring the range: warm-up for indicators."""
        return self._read(store, None, ts_ns, count, from_start=False)

    def _read_page(self, store: CandleReader, limit: int) -> list[Candle]:
        if self.after_ns is not None:
            start = self.after_ns + 1 if self.start_ns is None else max(
                self.start_ns, self.after_ns + 1
            )
            return self._read(store, start, self.end_ns, limit, from_start=True)
        if self.from_start:
            return self._read(store, self.start_ns, self.end_ns, limit, from_start=True)
        end = self.end_ns
        if self.before_ns is not None:
            end = self.before_ns if end is None else min(end, self.before_ns)
        return self._read(store, self.start_ns, end, limit, from_start=False)

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
