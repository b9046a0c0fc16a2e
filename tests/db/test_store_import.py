"""`candlegraph import` against each store: trade files into the candles and indicators of the
flow's engine, in SQLite and (when `CANDLEGRAPH_QUESTDB_URL` names a server) in QuestDB."""

from __future__ import annotations

from pathlib import Path

from db.store import Store
from flows.files.reader import ReadOptions, inspect_file
from flows.trade_archive import TradeArchive
from flows.trade_import import import_trades
from market.indicators import parse_indicators
from tests.flows.files.layouts import binance_trades, sample_trades, write
from tests.flows.imports import MARKET, TIMEFRAMES
from tests.market.batch_reference import batch_candles


def test_an_imported_file_stores_batch_candles_and_their_indicators(
    store: Store, tmp_path: Path
) -> None:
    trades = sample_trades(2000)
    path = write(tmp_path / "BTCUSDT-trades-2024-03-01.csv", binance_trades(trades), "zip")
    source = inspect_file(path, ReadOptions(symbol=MARKET.symbol))
    report = import_trades(
        [source], store, market=MARKET, timeframes=TIMEFRAMES,
        indicators=parse_indicators("sma:5,ema:5"), archive=TradeArchive(tmp_path / "archive"),
        work_dir=tmp_path / "work",
    )
    expected = batch_candles(trades, TIMEFRAMES, 0)
    stored = {
        (c.symbol, c.timeframe, c.ts): c
        for tf in TIMEFRAMES
        for c in store.candles(MARKET.exchange, MARKET.symbol, tf.name, limit=100_000)
    }
    assert stored == expected and report.candles == len(expected)
    sma = store.indicators(MARKET.exchange, MARKET.symbol, "1s", ["sma_5"], limit=100_000)
    assert sma.height == sum(1 for key in expected if key[1] == "1s") - 4
