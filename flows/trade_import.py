"""`candlegraph import` of trade files: candles of every timeframe and their indicators.

1. Read: every file's good rows go to `flows.staging`, by bucket of the widest timeframe (a
   UTC day with the standard timeframes; `partition_width`). Nothing is written to the store
   until every file has been read, so a bad file stops the import before it changes anything.
2. Build, one bucket at a time, oldest first: the bucket's staged trades and the trades
   earlier imports stored for it (`flows.trade_archive`) in fold order, repeated ids dropped
   (`flows.trade_order`); folded by the flow's `CandleAggregator` into candles for every
   timeframe (in time order, nothing is late); written with their indicators by
   `flows.history.HistoryWriter`, which warms them from the candles stored before the first
   bucket and carries them on from bucket to bucket; then the archive takes the bucket.
3. The last write folds in again the stored candles after the imported range, so their
   indicators follow the new history.

Each bucket's candles come from all the trades of that bucket ever imported, so files may be
given in any order, in one run or several, and a run that was stopped, run again, ends with
the store of one clean run: the same trades make the same candles and the same indicator
values, warmed from the same stored candles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from db.store import Store
from flows.files.bad_rows import BadRows
from flows.files.reader import SourceFile
from flows.files.rows import TRADE_COLUMNS
from flows.history import HistoryWrite, HistoryWriter
from flows.progress import NO_PROGRESS, Progress
from flows.staging import Staging
from flows.trade_archive import DAY_NS, TradeArchive
from flows.trade_order import fold_order
from flows.write_behind import WriteBehind
from market.aggregator import CandleAggregator
from market.candle_columns import CandleColumns
from market.indicators import IndicatorSpec
from market.timeframes import Timeframe
from market.trade_batch import TradeBatch

#: Trades per call into the aggregator. Its id table is sized by the call and rebuilt before
#: each: 16,384 trades keep it in the processor's cache (100,000 took a third longer).
FOLD_ROWS = 1 << 14
#: Candles per write: a day of 1-second candles is written in pieces, so the indicator
#: values in memory at once stay few.
WRITE_CANDLES = 20_000
#: The widest a bucket of all timeframes together may be.
MAX_PARTITION_NS = 366 * DAY_NS


class ImportSetupError(ValueError):
    """Settings an import cannot work with."""


@dataclass(frozen=True, slots=True)
class Market:
    exchange: str
    symbol: str


@dataclass(slots=True)
class TradeImportReport:
    """What an import of trade files did."""

    files: int = 0
    trades_read: int = 0
    trades_new: int = 0
    duplicates: int = 0
    candles: int = 0
    indicator_rows: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    bad_rows: BadRows = field(default_factory=BadRows)


class CandlesOnly:
    """What `HistoryWriter` does without indicators, without reading anything back."""

    def __init__(self, store: Store, behind: WriteBehind) -> None:
        self.store = store
        self.behind = behind

    def write(self, candles: CandleColumns, *, through_ns: int | None = None) -> HistoryWrite:
        self.behind.submit(partial(self.store.upsert_candle_columns, candles))
        return HistoryWrite(len(candles), 0, 0)


def history_writer(
    store: Store, indicators: Sequence[IndicatorSpec], behind: WriteBehind
) -> HistoryWriter | CandlesOnly:
    """`HistoryWriter` for these indicators, its store writes run by `behind`; with none, a
    writer of candles alone."""
    if indicators:
        return HistoryWriter(store, indicators, behind=behind)
    return CandlesOnly(store, behind)


def partition_width(timeframes: Sequence[Timeframe]) -> int:
    """The smallest span made of whole days and of whole buckets of every timeframe."""
    width = math.lcm(DAY_NS, *(tf.ns for tf in timeframes))
    if width > MAX_PARTITION_NS:
        names = ",".join(tf.name for tf in timeframes)
        raise ImportSetupError(
            f"the timeframes {names} share no bucket boundary within a year; choose timeframes"
            " that divide a common span of days"
        )
    return width


def stage_trades(
    sources: Sequence[SourceFile], staging: Staging, bad: BadRows, progress: Progress
) -> int:
    """Read every file's good trades into `staging`; return how many."""
    phase = progress.phase("reading", sum(s.data.size for s in sources), "B")
    read = 0
    try:
        for number, source in enumerate(sorted(sources, key=lambda s: str(s.path))):
            for chunk in source.chunks(bad, phase.advance):
                staging.add(chunk, number)
                read += len(chunk)
    finally:
        phase.close()
    return read


def import_trades(
    sources: Sequence[SourceFile],
    store: Store,
    *,
    market: Market,
    timeframes: Sequence[Timeframe],
    indicators: Sequence[IndicatorSpec],
    archive: TradeArchive,
    work_dir: Path,
    progress: Progress = NO_PROGRESS,
) -> TradeImportReport:
    """Import trade files of one market into `store` (see the module docstring)."""
    report = TradeImportReport(files=len(sources))
    width = partition_width(timeframes)
    staging = Staging(work_dir / "staging", width, TRADE_COLUMNS)
    try:
        report.trades_read = stage_trades(sources, staging, report.bad_rows, progress)
        buckets = staging.partitions()
        phase = progress.phase("building candles", staging.rows, "trades")
        try:
            with WriteBehind(name="import writes") as behind:
                writer = history_writer(store, indicators, behind)
                for i, bucket in enumerate(buckets):
                    start = bucket * width
                    new = staging.read(bucket)
                    old = archive.read(market.exchange, market.symbol, start, start + width)
                    trades, dropped = fold_order(pl.concat([old, new], how="vertical"))
                    candles = fold_candles(trades, market, timeframes)
                    candles = candles.take(np.argsort(candles.ts, kind="stable"))
                    end = buckets[i + 1] * width if i + 1 < len(buckets) else None
                    for first in range(0, len(candles), WRITE_CANDLES):
                        piece = candles.take(slice(first, first + WRITE_CANDLES))
                        following = first + WRITE_CANDLES
                        through = int(candles.ts[following]) if following < len(candles) else end
                        written = writer.write(piece, through_ns=through)
                        report.candles += written.candles
                        report.indicator_rows += written.indicator_rows
                    # After the bucket's candles, as run in order: a bucket in the archive
                    # has its candles stored.
                    behind.submit(partial(archive.write, market.exchange, market.symbol, trades))
                    report.trades_new += len(trades) - len(old)
                    report.duplicates += dropped
                    if len(trades):
                        first_ts, last_ts = trades["ts"].min(), trades["ts"].max()
                        assert isinstance(first_ts, int) and isinstance(last_ts, int)
                        report.first_ns = first_ts if report.first_ns is None else report.first_ns
                        report.last_ns = last_ts
                    phase.advance(len(new))
        finally:
            phase.close()
    finally:
        staging.remove()
    return report


def fold_candles(
    trades: pl.DataFrame, market: Market, timeframes: Sequence[Timeframe]
) -> CandleColumns:
    """The closed candles of `trades` (in fold order, one market) for every timeframe, as
    the flow's aggregator makes them, in the order it makes them final."""
    aggregator = CandleAggregator(timeframes, allowed_lateness_ns=0)
    keys = [(market.exchange, market.symbol)]
    # Writable copies: the compiled fold is then the flow's (numba compiles, and caches, a
    # second version of it for the read-only views polars gives).
    ts, price, size, side = (
        trades[name].to_numpy(writable=True) for name in ("ts", "price", "size", "side")
    )
    candles: list[CandleColumns] = []
    for start in range(0, len(trades), FOLD_ROWS):
        rows = slice(start, start + FOLD_ROWS)
        count = len(ts[rows])
        # Repeats are already dropped: each row's id is its position, always new.
        batch = TradeBatch(
            keys, np.zeros(count, np.int32), ts[rows], price[rows], size[rows], side[rows],
            np.arange(start, start + count, dtype=np.int64),
        )
        candles.append(aggregator.add_batch(batch).final)
    candles.append(aggregator.flush().final)
    return CandleColumns.concat(candles)
