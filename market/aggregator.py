"""Candle aggregation: folds trades into OHLCV candles for several timeframes, by event time.

Rules (DESIGN.md, "Rules of aggregation"):
- A trade lands in the bucket of each timeframe that holds its exchange timestamp.
- A forming candle closes when a trade of a later bucket arrives for its symbol, or when the
  watermark (the latest trade time this aggregator has seen, minus the allowed lateness)
  passes its end, so quiet symbols still close.
- A trade older than the watermark is late: it is returned to the caller, unapplied.
  A trade within the lateness amends its candle; an amended closed candle is re-emitted, closed.
- A trade id already seen for the same exchange and symbol is a duplicate and is dropped.

Arithmetic is a plain sequential fold in arrival order, so a candle equals, to the last bit,
a batch aggregation that folds the same accepted trades in the same order. `vwap` is the
sum of price times size over the volume (the close when the volume is zero).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from market.messages import Candle, Trade
from market.timeframes import Timeframe

Key = tuple[str, str]


class _Bar:
    """Mutable state of one candle while it can still change."""

    __slots__ = ("close", "closed", "high", "low", "notional", "open", "trades", "ts", "volume")

    def __init__(self, ts: int, price: float, size: float) -> None:
        self.ts = ts
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.notional = price * size
        self.trades = 1
        self.closed = False

    def add(self, price: float, size: float) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.notional += price * size
        self.trades += 1


@dataclass(slots=True)
class _Series:
    """One symbol's candles in one timeframe: the forming one and recently closed ones."""

    timeframe: Timeframe
    forming: _Bar | None = None
    closed: dict[int, _Bar] = field(default_factory=dict)


@dataclass(slots=True)
class _Book:
    series: list[_Series]
    seen: dict[str, int] = field(default_factory=dict)
    seen_order: deque[tuple[int, str]] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class AddResult:
    """What one `add` call produced: candle updates, and the trades it would not apply."""

    candles: list[Candle]
    late: list[Trade]
    duplicates: int


def candle_of(exchange: str, symbol: str, timeframe: str, bar: _Bar) -> Candle:
    vwap = bar.notional / bar.volume if bar.volume > 0 else bar.close
    return Candle(
        exchange, symbol, timeframe, bar.ts, bar.open, bar.high, bar.low, bar.close,
        bar.volume, bar.trades, vwap, bar.closed,
    )


class CandleAggregator:
    """Folds trades of any number of symbols into candles of several timeframes. No I/O.

    `add` returns the latest state of every candle the trades touched (each once), including
    candles they closed; `advance` closes what the watermark has passed; `flush` closes all.
    """

    def __init__(
        self, timeframes: Sequence[Timeframe], *, allowed_lateness_ns: int = 5_000_000_000
    ) -> None:
        if not timeframes:
            raise ValueError("CandleAggregator needs at least one timeframe")
        if allowed_lateness_ns < 0:
            raise ValueError(f"allowed_lateness_ns must be >= 0, got {allowed_lateness_ns}")
        self._timeframes = tuple(sorted(timeframes))
        self._lateness = allowed_lateness_ns
        self._books: dict[Key, _Book] = {}
        self.max_event_ns = 0

    @property
    def watermark_ns(self) -> int:
        """Trades older than this are late; candles ending at or before it are closed."""
        return self.max_event_ns - self._lateness

    def add(self, trades: Iterable[Trade]) -> AddResult:
        touched: dict[tuple[Key, str, int], _Bar] = {}
        late: list[Trade] = []
        duplicates = 0
        for trade in trades:
            key = (trade.exchange, trade.symbol)
            book = self._books.get(key)
            if book is None:
                book = self._books[key] = _Book([_Series(tf) for tf in self._timeframes])
            if trade.ts < self.max_event_ns - self._lateness:
                late.append(trade)
                continue
            if trade.trade_id in book.seen:
                duplicates += 1
                continue
            book.seen[trade.trade_id] = trade.ts
            book.seen_order.append((trade.ts, trade.trade_id))
            if trade.ts > self.max_event_ns:
                self.max_event_ns = trade.ts
            for series in book.series:
                self._apply(key, series, trade, touched)
        self._close_passed(touched)
        return AddResult(self._emit(touched), late, duplicates)

    def advance(self, event_ns: int) -> list[Candle]:
        """Move event time forward without a trade (an idle stream), closing what it passes."""
        if event_ns > self.max_event_ns:
            self.max_event_ns = event_ns
        touched: dict[tuple[Key, str, int], _Bar] = {}
        self._close_passed(touched)
        return self._emit(touched)

    def flush(self) -> list[Candle]:
        """Close every forming candle, as at the end of a finite input."""
        touched: dict[tuple[Key, str, int], _Bar] = {}
        for key, book in self._books.items():
            for series in book.series:
                bar = series.forming
                if bar is not None:
                    bar.closed = True
                    series.forming = None
                    touched[(key, series.timeframe.name, bar.ts)] = bar
        return self._emit(touched)

    def _apply(
        self, key: Key, series: _Series, trade: Trade, touched: dict[tuple[Key, str, int], _Bar]
    ) -> None:
        tf = series.timeframe
        bucket = trade.ts - trade.ts % tf.ns
        bar = series.forming
        if bar is not None and bucket == bar.ts:
            bar.add(trade.price, trade.size)
        elif bar is None or bucket > bar.ts:
            if bar is not None:
                bar.closed = True
                series.closed[bar.ts] = bar
                touched[(key, tf.name, bar.ts)] = bar
            bar = series.forming = _Bar(bucket, trade.price, trade.size)
        else:
            bar = series.closed.get(bucket)
            if bar is None:
                bar = series.closed[bucket] = _Bar(bucket, trade.price, trade.size)
                bar.closed = True
            else:
                bar.add(trade.price, trade.size)
        touched[(key, tf.name, bucket)] = bar

    def _close_passed(self, touched: dict[tuple[Key, str, int], _Bar]) -> None:
        watermark = self.max_event_ns - self._lateness
        for key, book in self._books.items():
            for series in book.series:
                tf_ns = series.timeframe.ns
                bar = series.forming
                if bar is not None and bar.ts + tf_ns <= watermark:
                    bar.closed = True
                    series.forming = None
                    touched[(key, series.timeframe.name, bar.ts)] = bar
                if series.closed:
                    for ts in [ts for ts in series.closed if ts + tf_ns <= watermark]:
                        del series.closed[ts]
            order = book.seen_order
            while order and order[0][0] < watermark:
                book.seen.pop(order.popleft()[1], None)

    @staticmethod
    def _emit(touched: dict[tuple[Key, str, int], _Bar]) -> list[Candle]:
        return [
            candle_of(key[0], key[1], tf_name, bar) for (key, tf_name, _), bar in touched.items()
        ]
