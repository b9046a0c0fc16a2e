"""`candlegraph import` of candle files: stored as closed candles, with their indicators.

Every file's good rows are read first (`flows.staging`, by timeframe and by about a month),
so a bad file stops the import before anything is written; files may come in any order and
overlap (where two files hold a candle of the same time, the one from the file whose path
sorts last wins). The candles then go, oldest first, to `flows.history.HistoryWriter`, which
computes their indicators warmed from the candles stored before them, writes both, and at the
end folds in again the stored candles after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from db.store import Store
from flows.files.bad_rows import BadRows
from flows.files.reader import SourceFile
from flows.files.rows import CANDLE_COLUMNS
from flows.history import HistoryWriter
from flows.progress import NO_PROGRESS, Phase, Progress
from flows.staging import Staging
from flows.trade_import import CandlesOnly, Market, history_writer
from flows.write_behind import WriteBehind
from market.candle_columns import UNKNOWN_TRADES, CandleColumns
from market.indicators import IndicatorSpec

#: Staged partitions of candles: about a month each.
PARTITION_NS = 32 * 86_400 * 10**9


@dataclass(slots=True)
class CandleImportReport:
    """What an import of candle files did."""

    files: int = 0
    candles_read: int = 0
    candles: int = 0
    indicator_rows: int = 0
    timeframes: list[str] = field(default_factory=list)
    first_ns: int | None = None
    last_ns: int | None = None
    bad_rows: BadRows = field(default_factory=BadRows)


def import_candles(
    sources: Sequence[SourceFile],
    store: Store,
    *,
    market: Market,
    indicators: Sequence[IndicatorSpec],
    work_dir: Path,
    progress: Progress = NO_PROGRESS,
) -> CandleImportReport:
    """Import candle files of one market into `store` (see the module docstring)."""
    report = CandleImportReport(files=len(sources))
    names = sorted({s.timeframe.name for s in sources if s.timeframe is not None})
    report.timeframes = names
    stagings = {
        name: Staging(work_dir / "staging" / name, PARTITION_NS, CANDLE_COLUMNS)
        for name in names
    }
    try:
        phase = progress.phase("reading", sum(s.data.size for s in sources), "B")
        try:
            for number, source in enumerate(sorted(sources, key=lambda s: str(s.path))):
                assert source.timeframe is not None
                for chunk in source.chunks(report.bad_rows, phase.advance):
                    stagings[source.timeframe.name].add(chunk, number)
                    report.candles_read += len(chunk)
        finally:
            phase.close()
        phase = progress.phase("writing candles", report.candles_read, "candles")
        try:
            with WriteBehind(name="import writes") as behind:
                writer = history_writer(store, indicators, behind)
                for name, staging in stagings.items():
                    _write_staged(staging, name, market, writer, report, phase)
        finally:
            phase.close()
    finally:
        for staging in stagings.values():
            staging.remove()
    return report


def _write_staged(
    staging: Staging, timeframe: str, market: Market, writer: HistoryWriter | CandlesOnly,
    report: CandleImportReport, phase: Phase,
) -> None:
    """Write one timeframe's staged candles, oldest partition first (where two files hold a
    candle of the same time, the later one staged wins)."""
    partitions = staging.partitions()
    for i, partition in enumerate(partitions):
        rows = staging.read(partition)
        rows = rows.sort("ts", maintain_order=True).unique(
            subset="ts", keep="last", maintain_order=True
        )
        through = partitions[i + 1] * PARTITION_NS if i + 1 < len(partitions) else None
        candles = candle_columns(rows, market, timeframe)
        written = writer.write(candles, through_ns=through)
        report.candles += written.candles
        report.indicator_rows += written.indicator_rows
        if len(candles):
            first = int(candles.ts[0])
            report.first_ns = min(first, report.first_ns or first)
            report.last_ns = max(int(candles.ts[-1]), report.last_ns or 0)
        phase.advance(len(rows))


def candle_columns(rows: pl.DataFrame, market: Market, timeframe: str) -> CandleColumns:
    """Rows of `CANDLE_COLUMNS` as closed candles (null trades and VWAP: the candles carry
    neither)."""
    n = rows.height
    zeros = np.zeros(n, np.int64)
    ts, open_, high, low, close, volume = (
        rows[name].to_numpy() for name in ("ts", "open", "high", "low", "close", "volume")
    )
    return CandleColumns(
        [(market.exchange, market.symbol)], [timeframe], zeros, zeros,
        ts, open_, high, low, close, volume,
        rows["trades"].fill_null(UNKNOWN_TRADES).to_numpy(),
        rows["vwap"].cast(pl.Float64).fill_null(np.nan).to_numpy(), np.ones(n, np.bool_),
    )
