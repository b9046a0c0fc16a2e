"""`CandleColumns` built from candle messages, with and without a trade count and a VWAP."""

from __future__ import annotations

import numpy as np

from market.candle_columns import UNKNOWN_TRADES, CandleColumns
from market.messages import Candle, decode_candle, encode

M = 60_000_000_000
MARKETS = [("binance", "BTC-USDT"), ("sim", "ETH-USDT")]


def test_candles_with_and_without_trade_counts_round_trip_through_columns() -> None:
    candles = [
        Candle("binance", "BTC-USDT", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.0, None, None, True),
        Candle("sim", "ETH-USDT", "1h", M, 10.0, 12.0, 9.0, 11.0, 0.0, 0, 11.0, True),
        Candle("binance", "BTC-USDT", "1m", M, 1.5, 2.5, 1.0, 2.0, 4.0, 7, 1.75, False),
    ]
    columns = CandleColumns.from_candles(candles, MARKETS, ["1m", "1h"])
    assert columns.market.tolist() == [0, 1, 0]
    assert columns.timeframe.tolist() == [0, 1, 0]
    assert columns.trades.tolist() == [UNKNOWN_TRADES, 0, 7]
    assert np.isnan(columns.vwap[0]) and columns.vwap[1:].tolist() == [11.0, 1.75]
    assert columns.to_candles() == candles
    assert columns.take(np.array([1, 2])).to_candles() == candles[1:]


def test_a_candle_without_trade_count_or_vwap_travels_as_json_nulls() -> None:
    candle = Candle("binance", "BTC-USDT", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.0, None, None, True)
    data = encode(candle)
    assert b'"trades":null,"vwap":null' in data
    assert decode_candle(data) == candle
