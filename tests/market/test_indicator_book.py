"""`IndicatorBook`: a series met for the first time is warmed from the history it is given."""

from __future__ import annotations

import numpy as np

from market.candle_columns import CandleColumns
from market.indicator_book import MIN_WARM_CANDLES, IndicatorBook, warm_candles
from market.indicators import DEFAULT_INDICATORS, parse_indicators
from market.messages import Candle

M = 60_000_000_000
MARKETS = [("sim", "BTC-USDT")]


def candles(n: int) -> list[Candle]:
    closes = 100 + np.cumsum(np.sin(np.arange(n) * 0.7))
    return [Candle("sim", "BTC-USDT", "1m", i * M, c, c + 1, c - 1, c, 1.0 + i % 3, 1, c, True)
            for i, c in enumerate(closes.tolist())]


def test_a_new_series_is_warmed_from_the_history_before_its_first_candle() -> None:
    history = candles(60)
    asked: list[tuple[str, str, str, int]] = []

    def stored(exchange: str, symbol: str, timeframe: str, before_ns: int) -> list[Candle]:
        asked.append((exchange, symbol, timeframe, before_ns))
        return [c for c in history[:50] if c.ts < before_ns]

    specs = parse_indicators("sma:20,wma:10")
    warmed, whole = IndicatorBook(specs), IndicatorBook(specs)
    live = CandleColumns.from_candles(history[50:], MARKETS, ["1m"])
    got = warmed.update(live, stored)
    expected = whole.update(CandleColumns.from_candles(history, MARKETS, ["1m"]), None)[50:]
    assert asked == [("sim", "BTC-USDT", "1m", 50 * M)]  # once, for the new series
    assert got == expected and set(got[0]) == {"sma_20", "wma_10"}


def test_warm_up_covers_thirty_lengths_of_the_longest_indicator() -> None:
    assert warm_candles(DEFAULT_INDICATORS) == MIN_WARM_CANDLES
    assert warm_candles(parse_indicators("sma:20,ema:200,obv")) == 6000
    assert warm_candles(()) == MIN_WARM_CANDLES
