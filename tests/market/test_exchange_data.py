"""ccxt's trades and OHLCV rows as our messages, and the cursor that takes each trade once."""

from __future__ import annotations

import random
from typing import Any

import pytest

from market.backoff import Backoff
from market.exchange_data import (
    ExchangeNameError,
    TradeConverter,
    candles_from_ohlcv,
    canonical_symbol,
    ccxt_symbol,
)
from market.messages import Candle, Trade
from market.trade_cursor import TradeCursor

NOW = 1_700_000_000_000_000_000


def raw(id: Any = "7", **fields: Any) -> dict[str, Any]:
    trade = {"id": id, "timestamp": NOW // 1_000_000 - 5, "symbol": "BTC/USDT", "price": 100.5,
             "amount": 0.25, "side": "sell", "info": {"a": id}}
    trade.update(fields)
    return trade


def test_names_convert_at_the_edge() -> None:
    assert canonical_symbol("btc/usdt") == "BTC-USDT" == canonical_symbol("BTC-USDT")
    assert ccxt_symbol("BTC-USDT") == "BTC/USDT"
    with pytest.raises(ExchangeNameError, match="BASE/QUOTE"):
        canonical_symbol("BTCUSDT")


def test_a_ccxt_trade_becomes_a_trade_in_nanoseconds_with_a_string_id() -> None:
    converter = TradeConverter("Binance", "BTC/USDT", max_future_ns=60 * 10**9)
    trades, rejected = converter.convert([raw(7), raw("8", side=None, price=101)], now_ns=NOW)
    assert rejected == []
    assert trades == [
        Trade("binance", "BTC-USDT", NOW - 5_000_000, 100.5, 0.25, "sell", "7"),
        Trade("binance", "BTC-USDT", NOW - 5_000_000, 101.0, 0.25, "unknown", "8"),
    ]


def test_bad_exchange_trades_are_rejected_with_their_reason_and_the_rest_kept() -> None:
    converter = TradeConverter("binance", "BTC-USDT", max_future_ns=60 * 10**9)
    batch = [raw(None), raw(price=-1.0), raw(price=None), raw(amount=float("nan")),
             raw(symbol="ETH/USDT"), raw(timestamp=NOW // 1_000_000 + 120_000), {"id": "x"},
             raw("9")]
    trades, rejected = converter.convert(batch, now_ns=NOW)
    assert [t.trade_id for t in trades] == ["9"]
    assert [r.reason for r in rejected] == [
        "missing_field", "bad_price", "bad_price", "bad_size", "bad_symbol",
        "future_timestamp", "missing_field",
    ]
    assert all(r.detail.startswith("binance:BTC-USDT: ") for r in rejected)
    assert '"a":null' in rejected[0].payload


def test_ohlcv_rows_become_closed_candles_without_count_or_vwap() -> None:
    rows: list[list[object]] = [
        [60_000, 1.0, 2.0, 0.5, 1.5, 3.0], [120_000, 1.5, 1.0, 2.0, 1.2, 1.0],
        [180_000, "x", 1, 1, 1, 1],
    ]
    candles, rejected = candles_from_ohlcv(rows, "binance", "BTC-USDT", "1m")
    assert candles == [Candle("binance", "BTC-USDT", "1m", 60 * 10**9, 1.0, 2.0, 0.5, 1.5, 3.0,
                              None, None, True)]
    assert [r.reason for r in rejected] == ["bad_price", "bad_field"]


def trade(id: str, ts: int = 1) -> Trade:
    return Trade("binance", "BTC-USDT", ts, 1.0, 1.0, "buy", id)


def test_a_cursor_takes_each_numbered_trade_once_in_id_order() -> None:
    cursor = TradeCursor()
    assert [t.trade_id for t in cursor.admit([trade("9"), trade("10"), trade("9")])] == ["9", "10"]
    assert cursor.admit([trade("8", ts=5), trade("11", ts=1)]) == [trade("11", ts=1)]
    resumed = TradeCursor.decode(cursor.encode())
    assert [t.trade_id for t in resumed.admit([trade("11"), trade("12")])] == ["12"]


def test_a_cursor_orders_other_ids_by_time_then_by_the_ids_already_taken() -> None:
    cursor = TradeCursor()
    cursor.admit([trade("a", ts=5), trade("b", ts=5)])
    resumed = TradeCursor.decode(cursor.encode())
    taken = resumed.admit([trade("a", ts=5), trade("c", ts=5), trade("z", ts=4), trade("d", 6)])
    assert [t.trade_id for t in taken] == ["c", "d"]


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 1.0
