"""Columnar writes (history's): candle columns and indicator tables, in both stores, store
what the row-by-row writes store."""

from __future__ import annotations

import math

import numpy as np

from db.candle_store import SymbolSummary
from db.columns import IndicatorTable
from db.indicator_store import IndicatorValues
from db.store import Store
from market.candle_columns import CandleColumns
from market.messages import Candle

S = 1_000_000_000
M = 60 * S
T0 = 1_700_000_400 * S
NAN = math.nan


def history(n: int, symbol: str, timeframe: str, *, counted: bool) -> list[Candle]:
    return [
        Candle("sim", symbol, timeframe, T0 + i * M, 10.0 + i, 11.5 + i, 9.25 + i,
               10.5 + i / 7, 2.0 + i, i + 1 if counted else None,
               10.25 + i if counted else None, True)
        for i in range(n)
    ]


def test_candle_columns_store_what_the_same_candles_store(store: Store) -> None:
    btc = history(5, "BTC-USDT", "1m", counted=True)
    eth = history(4, "ETH-USDT", "1h", counted=False)  # an exchange's: no count, no VWAP
    mixed = [btc[0], eth[3], *btc[1:], *eth[:3]]
    markets = [("sim", "BTC-USDT"), ("sim", "ETH-USDT")]
    store.upsert_candle_columns(CandleColumns.from_candles(mixed, markets, ["1h", "1m"]))
    assert store.candles("sim", "BTC-USDT", "1m") == btc
    assert store.candles("sim", "ETH-USDT", "1h") == eth
    # The series' extents follow, as `upsert_candles` keeps them: latest close included.
    assert store.symbol_summaries() == [
        SymbolSummary("sim", "BTC-USDT", T0, T0 + 4 * M, btc[4].close),
        SymbolSummary("sim", "ETH-USDT", T0, T0 + 3 * M, eth[3].close),
    ]


def test_an_indicator_table_writes_what_its_rows_write(store: Store) -> None:
    store.upsert_indicator_values([
        IndicatorValues("sim", "BTC-USDT", "1m", T0, {"a": 1.0, "b": 2.0}),
        IndicatorValues("sim", "BTC-USDT", "1m", T0 + M, {"a": 9.0}),
    ])
    table = IndicatorTable(
        "sim", "BTC-USDT", "1m", ("a", "b"), np.array([T0, T0 + M, T0 + 2 * M]),
        np.array([[NAN, 3.0], [NAN, 4.0], [1 / 3, -0.0]]), np.array([True, False, False]),
    )
    store.upsert_indicator_table(table)
    # A replacing row's NaN removes the stored value; another row's leaves it.
    assert store.indicators("sim", "BTC-USDT", "1m").rows() == [
        (T0, None, 3.0), (T0 + M, 9.0, 4.0), (T0 + 2 * M, 1 / 3, -0.0),
    ]
    rows = table.rows()
    assert [(r.ts, list(r.values)) for r in rows] == [
        (T0, ["a", "b"]), (T0 + M, ["b"]), (T0 + 2 * M, ["a", "b"])
    ]
    assert math.isnan(rows[0].values["a"]) and rows[1].values == {"b": 4.0}


def test_names_that_an_indicator_table_never_gives_a_value_are_not_listed(store: Store) -> None:
    store.upsert_indicator_table(IndicatorTable(
        "sim", "BTC-USDT", "1d", ("sma_20", "vwap"), np.array([T0, T0 + M]),
        np.array([[NAN, 5.0], [NAN, 6.0]]), np.array([False, False]),
    ))
    assert store.indicators("sim", "BTC-USDT", "1d").columns == ["ts", "vwap"]
