"""Running imports in tests, and reading back what they stored."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from db.sqlite import SqliteStore
from flows.files.reader import ReadOptions, inspect_file
from flows.trade_archive import TradeArchive
from flows.trade_import import Market, TradeImportReport, import_trades
from market.indicators import IndicatorSpec
from market.messages import Candle
from market.timeframes import Timeframe, parse_timeframes

MARKET = Market("binance", "BTC-USDT")
TIMEFRAMES = parse_timeframes("1s,1m,1h,1d")


def import_files(
    files: Sequence[Path], data: Path, *, indicators: Sequence[IndicatorSpec] = (),
    options: ReadOptions | None = None, timeframes: Sequence[Timeframe] = TIMEFRAMES,
) -> TradeImportReport:
    """Import trade files into the store and archive under `data`, as `candlegraph import`
    does."""
    options = options or ReadOptions(symbol=MARKET.symbol)
    sources = [inspect_file(path, options) for path in files]
    store = SqliteStore(data / "candlegraph.sqlite")
    try:
        return import_trades(
            sources, store, market=MARKET, timeframes=timeframes, indicators=indicators,
            archive=TradeArchive(data / "imports" / "trades"), work_dir=data / "work",
        )
    finally:
        store.close()


def stored_candles(
    data: Path, timeframes: Sequence[Timeframe] = TIMEFRAMES
) -> dict[tuple[str, int], Candle]:
    store = SqliteStore(data / "candlegraph.sqlite")
    try:
        return {
            (c.timeframe, c.ts): c
            for tf in timeframes
            for c in store.candles(MARKET.exchange, MARKET.symbol, tf.name, limit=10**7)
        }
    finally:
        store.close()


def stored_indicators(
    data: Path, timeframes: Sequence[Timeframe] = TIMEFRAMES
) -> dict[tuple[str, int, str], float]:
    store = SqliteStore(data / "candlegraph.sqlite")
    out = {}
    try:
        for tf in timeframes:
            frame = store.indicators(MARKET.exchange, MARKET.symbol, tf.name, limit=10**7)
            for row in frame.iter_rows(named=True):
                ts = row.pop("ts")
                for name, value in row.items():
                    if value is not None and not math.isnan(value):
                        out[(tf.name, ts, name)] = value
    finally:
        store.close()
    return out
