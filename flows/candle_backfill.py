"""`candlegraph backfill`: an exchange's candle history through ccxt's `fetch_ohlcv`, stored.

For each market and timeframe (a series):

- **What to fetch** (`market.history_ranges`): an incremental run fetches the part of the
  asked range before the first stored candle and after the last one, as Freqtrade's
  `download-data` does, so a second run fetches only what is new; `repair` fetches every
  missing bucket of the range, holes included. Buckets the exchange is known to have no
  candle for (`Store.known_gaps`) are left out of both.
- **Paging**: ascending pages of the exchange's largest size (ccxt's
  `features.spot.fetchOHLCV.limit`), each asked for from its first missing bucket with an
  `until` at the end of the range. ccxt's own `paginate` is not used: for klines it pages
  back from *now* and silently moves an old `since` forward.
- **Only closed candles**: the range ends at the start of the bucket still forming.
- **Gaps**: buckets of a fetched range the exchange did not return are remembered as known
  gaps (an outage, a market not listed yet, a bucket without trades), so they are not asked
  for again, except in the last `RECENT_NS`, where the exchange may just be late.
- **Storing**: each page goes through `flows.history.HistoryWriter`: candles (without trade
  count or VWAP, which OHLCV does not carry) and their indicators, computed by the flow's
  engine, warmed from the candles stored before them.
- **Interrupting**: `stop` is looked at between pages; the page in hand is stored first. As
  every page is stored before the next is asked for, and candles last, a run started again
  fetches exactly what the first did not store.

Exchange errors of the network kind (rate limits included) are retried with backoff, up to
`retries` times in a row; anything else fails the series, and the next one goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import ccxt

from db.store import Store
from flows.history import HistoryWriter
from market.backoff import Backoff
from market.exchange_data import candles_from_ohlcv, ccxt_symbol
from market.history_ranges import Range, bucket_count, edge_ranges, hole_ranges, unreturned
from market.indicators import IndicatorSpec
from market.timeframes import Timeframe

log = logging.getLogger(__name__)

NS_PER_MS = 1_000_000
#: Gaps ending this close to now are not remembered: the exchange may just be late.
RECENT_NS = 3600 * 1_000_000_000
#: Page size for exchanges whose ccxt description gives none.
DEFAULT_PAGE = 500


class BackfillError(Exception):
    """A series could not be backfilled (bad market or timeframe, an exchange error)."""


class Progress(Protocol):
    """Where a backfill reports its progress (a progress bar, or log lines)."""

    def begin(self, what: str, total: int) -> None: ...

    def advance(self, candles: int) -> None: ...

    def end(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """Series to fill: our symbols (`BTC-USDT`), timeframe names, and [since, until) in ns.

    `since` None: from the last stored candle on (a series with none needs one)."""

    exchange: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    since_ns: int | None
    until_ns: int
    repair: bool = False


@dataclass(slots=True)
class BackfillReport:
    """What a run did, and where its time went: in ccxt (request and parsing), in our
    conversion, and in the store (candles and indicators)."""

    requests: int = 0
    candles: int = 0
    gaps: int = 0
    fetch_s: float = 0.0
    convert_s: float = 0.0
    store_s: float = 0.0
    failed: list[str] = field(default_factory=list)
    stopped: bool = False


class CandleBackfill:
    """Fills series of one exchange into `store`; see the module docstring."""

    def __init__(
        self,
        exchange: Any,
        store: Store,
        indicators: Sequence[IndicatorSpec],
        *,
        progress: Progress,
        stop: asyncio.Event,
        retries: int = 8,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.writer = HistoryWriter(store, indicators)
        self.progress = progress
        self.stop = stop
        self.retries = retries
        self._backoff = (backoff_s, backoff_max_s)
        self._clock_ns = clock_ns
        features = (exchange.features or {}).get("spot") or {}
        self.page = int((features.get("fetchOHLCV") or {}).get("limit") or DEFAULT_PAGE)

    async def run(self, request: BackfillRequest) -> BackfillReport:
        """Fill every series of the request, one after the other."""
        report = BackfillReport()
        await self._call(self.exchange.load_markets, report)
        for symbol in request.symbols:
            for timeframe in request.timeframes:
                if self.stop.is_set():
                    report.stopped = True
                    return report
                name = f"{request.exchange}:{symbol} {timeframe}"
                try:
                    await self._series(request, symbol, timeframe, report)
                except BackfillError as error:
                    log.error("backfill of %s failed: %s", name, error)
                    report.failed.append(f"{name}: {error}")
        report.stopped = self.stop.is_set()
        return report

    def ranges(self, request: BackfillRequest, symbol: str, timeframe: str) -> list[Range]:
        """What the request fetches of one series, given what is stored."""
        step = Timeframe.parse(timeframe).ns
        now = self._clock_ns()
        until = min(request.until_ns, now - now % step)  # the forming bucket is left out
        key = (request.exchange, symbol, timeframe)
        known = self.store.known_gaps(*key)
        first = self.store.candles(*key, limit=1, from_start=True)
        last = self.store.candles(*key, limit=1)
        since = request.since_ns
        if since is None:
            if not last:
                raise BackfillError("nothing is stored yet: say from when (--since or --days)")
            since = first[0].ts if request.repair else last[0].ts + step
        if request.repair:
            stored = self.store.candles_frame(*key, since, until, columns=[])["ts"].to_numpy()
            return hole_ranges(since, until, step, stored, known)
        extent = (first[0].ts, last[0].ts) if first and last else None
        return edge_ranges(since, until, step, extent, known)

    async def _series(
        self, request: BackfillRequest, symbol: str, timeframe: str, report: BackfillReport
    ) -> None:
        market = ccxt_symbol(symbol)
        if market not in self.exchange.markets:
            raise BackfillError(f"{request.exchange} has no market {market}")
        if timeframe not in (self.exchange.timeframes or {}):
            valid = ", ".join(self.exchange.timeframes or {}) or "none"
            raise BackfillError(f"{request.exchange} has no {timeframe} candles; it has {valid}")
        step = Timeframe.parse(timeframe).ns
        ranges = self.ranges(request, symbol, timeframe)
        self.progress.begin(f"{request.exchange} {symbol} {timeframe}",
                            bucket_count(ranges, step))
        try:
            for i, (lo, hi) in enumerate(ranges):
                following = ranges[i + 1][0] if i + 1 < len(ranges) else None
                cursor = lo
                while cursor < hi:
                    if self.stop.is_set():
                        return
                    cursor = await self._page(
                        request, symbol, timeframe, market, (cursor, hi), following, report
                    )
        finally:
            self.progress.end()

    async def _page(
        self,
        request: BackfillRequest,
        symbol: str,
        timeframe: str,
        market: str,
        span: Range,
        following: int | None,
        report: BackfillReport,
    ) -> int:
        """Fetch and store one page from `span[0]`; return where the next page starts."""
        cursor, hi = span
        step = Timeframe.parse(timeframe).ns
        limit = min(self.page, max(1, (hi - cursor) // step))
        started = time.perf_counter()
        rows = await self._call(
            lambda: self.exchange.fetch_ohlcv(
                market, timeframe, cursor // NS_PER_MS, limit, {"until": hi // NS_PER_MS - 1}
            ),
            report,
        )
        converted = time.perf_counter()
        candles, rejected = candles_from_ohlcv(rows, request.exchange, symbol, timeframe)
        for bad in rejected:
            log.warning("%s %s %s: %s row skipped: %s", request.exchange, symbol, timeframe,
                        bad.reason, bad.detail)
        page = [c for c in candles if cursor <= c.ts < hi and c.ts % step == 0]
        newest = max((c.ts for c in candles), default=None)
        if len(rows) < limit or newest is None or newest + step >= hi:
            end = hi  # the exchange has given all it has up to the range's end
        else:
            end = newest + step
            if end <= cursor:
                raise BackfillError(
                    f"the exchange answered candles from before {cursor} ns asked from: it"
                    " does not page OHLCV by `since`"
                )
        stored = time.perf_counter()
        report.convert_s += stored - converted
        report.fetch_s += converted - started
        if page:
            self.writer.write(page, through_ns=end if end < hi else following)
        now = self._clock_ns()
        gaps = [g for g in unreturned((cursor, end), [c.ts for c in page], step)
                if g[1] <= now - RECENT_NS]
        if gaps:
            self.store.add_known_gaps(request.exchange, symbol, timeframe, gaps)
        report.store_s += time.perf_counter() - stored
        report.candles += len(page)
        report.gaps += bucket_count(gaps, step)
        self.progress.advance((end - cursor) // step)
        return end

    async def _call(self, make: Callable[[], Any], report: BackfillReport) -> Any:
        backoff = Backoff(*self._backoff)
        while True:
            try:
                report.requests += 1
                return await make()
            except ccxt.NetworkError as error:
                if backoff.attempts >= self.retries:
                    raise BackfillError(
                        f"{type(error).__name__} after {self.retries} retries: {error}"
                    ) from error
                delay = backoff.next_delay()
                log.warning("%s: %s; again in %.1f s", type(error).__name__, error, delay)
                await asyncio.sleep(delay)
            except ccxt.BaseError as error:
                raise BackfillError(f"{type(error).__name__}: {error}") from error
