"""The QuestDB store's parts that need no server: ILP serialization, URLs, failing loudly.

The store's behaviour against a server is the contract suite's QuestDB leg
(`test_store_contract.py`, run when `CANDLEGRAPH_QUESTDB_URL` is set).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator

import pandas as pd
import polars as pl
import pytest
from questdb import Sender

from db.ilp import (
    SYMBOLS,
    candles_dataframe,
    gaps_dataframe,
    indicators_dataframe,
    results_dataframes,
    sender_for,
)
from db.indicator_store import IndicatorPoint
from db.questdb import QuestDBStore
from db.questdb_tables import TABLES
from db.store import StoreError
from market.messages import Candle

S = 1_000_000_000


@pytest.fixture
def text_sender() -> Iterator[Sender]:
    """A sender that only serializes: ILP protocol 1 (text) fixed, so no server is asked."""
    sender = Sender.from_conf("http::addr=127.0.0.1:9;protocol_version=1;auto_flush=off;")
    sender.establish()
    yield sender
    sender.close(flush=False)


def ilp_lines(sender: Sender, table: str, frame: pd.DataFrame) -> list[str]:
    buffer = sender.new_buffer()
    buffer.dataframe(frame, table_name=table, symbols=SYMBOLS[table], at="ts")
    return bytes(buffer).decode().splitlines()


def test_candles_serialize_as_symbols_fields_and_a_nanosecond_timestamp(
    text_sender: Sender,
) -> None:
    candles = [
        Candle("sim", "BTC-USDT", "1m", 1_700_000_040 * S, 1.0, 2.0, 0.5, 1.5, 3.0, 4, 1.25, True),
        Candle("binance", "ETH-USDT", "1s", 1_700_000_041 * S, 0.1, 0.2, 0.05, 0.15, 0.0, 1,
               0.15, False),
    ]
    assert ilp_lines(text_sender, "candles", candles_dataframe(candles)) == [
        "candles,exchange=sim,symbol=BTC-USDT,timeframe=1m open=1.0,high=2.0,low=0.5,"
        "close=1.5,volume=3.0,trades=4i,vwap=1.25,closed=t 1700000040000000000",
        "candles,exchange=binance,symbol=ETH-USDT,timeframe=1s open=0.1,high=0.2,low=0.05,"
        "close=0.15,volume=0.0,trades=1i,vwap=0.15,closed=f 1700000041000000000",
    ]


def test_a_candle_without_trade_count_or_vwap_leaves_both_cells_null(
    text_sender: Sender,
) -> None:
    candles = [
        Candle("binance", "BTC-USDT", "1m", 1_700_000_040 * S, 1.0, 2.0, 0.5, 1.5, 3.0, None,
               None, True),
        Candle("sim", "BTC-USDT", "1m", 1_700_000_040 * S, 1.0, 2.0, 0.5, 1.5, 3.0, 4, 1.25,
               True),
    ]
    # No `trades` field at all, and NaN (QuestDB's null DOUBLE) for the VWAP.
    assert ilp_lines(text_sender, "candles", candles_dataframe(candles)) == [
        "candles,exchange=binance,symbol=BTC-USDT,timeframe=1m open=1.0,high=2.0,low=0.5,"
        "close=1.5,volume=3.0,vwap=NaN,closed=t 1700000040000000000",
        "candles,exchange=sim,symbol=BTC-USDT,timeframe=1m open=1.0,high=2.0,low=0.5,"
        "close=1.5,volume=3.0,trades=4i,vwap=1.25,closed=t 1700000040000000000",
    ]


def test_indicator_values_serialize_with_their_name_as_a_symbol(text_sender: Sender) -> None:
    points = [IndicatorPoint("sim", "BTC-USDT", "1m", 60 * S, "macd_12_26_9.hist", -0.5),
              IndicatorPoint("sim", "BTC-USDT", "1m", 60 * S, "sma_20", math.nan)]
    assert ilp_lines(text_sender, "indicators", indicators_dataframe(points)) == [
        "indicators,exchange=sim,symbol=BTC-USDT,timeframe=1m,name=macd_12_26_9.hist"
        " value=-0.5 60000000000",
        "indicators,exchange=sim,symbol=BTC-USDT,timeframe=1m,name=sma_20 value=NaN 60000000000",
    ]


def test_backtest_results_serialize_under_their_generation(text_sender: Sender) -> None:
    trades = pl.DataFrame({
        "position_id": ["P-1"], "side": ["LONG"], "entry_ts": [5], "exit_ts": [7],
        "entry_price": [100.0], "exit_price": [101.0], "quantity": [0.5], "pnl": [0.5],
        "fees": [0.01], "net_return": [0.0049],
    })
    equity = pl.DataFrame({"ts": [5, 7], "equity": [1000.0, 1000.5], "position": [0.5, 0.0]})
    frames = results_dataframes("bt-1", 1_700_000_000_000_001, trades, equity)
    stamp = "1700000000000001000"
    assert ilp_lines(text_sender, "backtest_trades", frames["backtest_trades"]) == [
        "backtest_trades,id=bt-1,side=LONG seq=0i,position_id=\"P-1\",entry_ts=5i,exit_ts=7i,"
        "entry_price=100.0,exit_price=101.0,quantity=0.5,pnl=0.5,fees=0.01,net_return=0.0049"
        f" {stamp}",
    ]
    assert ilp_lines(text_sender, "backtest_equity", frames["backtest_equity"]) == [
        f"backtest_equity,id=bt-1 at_ns=5i,equity=1000.0,position=0.5 {stamp}",
        f"backtest_equity,id=bt-1 at_ns=7i,equity=1000.5,position=0.0 {stamp}",
    ]
    assert ilp_lines(text_sender, "backtest_results", frames["backtest_results"]) == [
        f"backtest_results,id=bt-1 gen=1700000000000001i {stamp}",
    ]


def test_known_gaps_serialize_with_their_start_as_the_timestamp(text_sender: Sender) -> None:
    frame = gaps_dataframe("binance", "BTC-USDT", "1m", [(60 * S, 180 * S)])
    assert ilp_lines(text_sender, "known_gaps", frame) == [
        "known_gaps,exchange=binance,symbol=BTC-USDT,timeframe=1m end_ns=180000000000i"
        " 60000000000",
    ]


def test_every_table_is_a_deduplicated_wal_table_with_its_natural_key() -> None:
    keys = {
        "candles": "ts, exchange, symbol, timeframe",
        "indicators": "ts, exchange, symbol, timeframe, name",
        "backtests": "ts, id",
        "backtest_results": "ts, id",
        "backtest_trades": "ts, id, seq",
        "backtest_equity": "ts, id, at_ns",
        "known_gaps": "ts, exchange, symbol, timeframe",
    }
    assert set(TABLES) == set(keys)
    for name, ddl in TABLES.items():
        assert "TIMESTAMP(ts) PARTITION BY" in ddl
        assert f"WAL\n        DEDUP UPSERT KEYS({keys[name]})" in ddl


@pytest.mark.parametrize("url", ["127.0.0.1:9000", "postgresql://127.0.0.1:8812/qdb", "http://"])
def test_a_questdb_url_that_is_not_http_is_refused_with_the_expected_form(url: str) -> None:
    with pytest.raises(StoreError, match=r"http://host:9000"):
        sender_for(url)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_raises_store_error() -> None:
    port = closed_port()
    with pytest.raises(StoreError, match="cannot open ILP/HTTP sender"):
        QuestDBStore(
            f"http://127.0.0.1:{port}", f"postgresql://admin:quest@127.0.0.1:{port}/qdb",
            retry_timeout_ms=0,
        )


def store_answering(*answers: list[tuple]) -> tuple[QuestDBStore, list[str]]:
    """A store whose `wal_tables()` reads return `answers` in turn (the last one repeats): the
    write path's wait for QuestDB's WAL apply, with no server."""
    store = QuestDBStore.__new__(QuestDBStore)
    store._t = {name: f"p_{name}" for name in TABLES}
    store._apply_timeout_s = 0.2
    asked: list[str] = []

    def query(sql: str, params: object, *, fetch: bool = True) -> list[tuple]:
        asked.append(sql)
        return answers[min(len(asked), len(answers)) - 1]

    store._query = query  # type: ignore[method-assign]  # a recording stand-in for the query
    return store, asked


def test_a_write_waits_until_its_tables_have_applied_what_was_committed() -> None:
    store, asked = store_answering(
        [("p_candles", False, 5, 7), ("p_other", False, 0, 9)],
        [("p_candles", False, 6, 8)],  # a later commit (8) is not waited for
        [("p_candles", False, 7, 8)],
    )
    store._await_applied(["candles"])
    assert len(asked) == 3


def test_a_suspended_table_fails_the_write() -> None:
    store, _ = store_answering([("p_candles", True, 5, 7)])
    with pytest.raises(StoreError, match="p_candles is suspended"):
        store._await_applied(["candles"])


def test_an_apply_that_lags_is_logged_not_failed(caplog: pytest.LogCaptureFixture) -> None:
    store, asked = store_answering([("p_candles", False, 5, 7)])
    store._await_applied(["candles"])
    assert len(asked) > 1
    assert "has not applied the WAL of ['p_candles']" in caplog.text
