"""Indicators over stored history: `HistoryWriter`, `StoredHistory`, and the live flow warmed
from the store, all against a real SQLite store."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pandas_ta as ta
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from db.sqlite import SqliteStore
from flows.dataflow import build_flow
from flows.history import HistoryWriter, StoredHistory
from flows.jetstream_source import RawMessage
from flows.outputs import FlowOutput
from flows.write_behind import WriteBehind
from market.indicators import DEFAULT_INDICATORS, IndicatorSet, parse_indicators
from market.messages import Candle, Trade, encode
from market.timeframes import parse_timeframes

S = 1_000_000_000
M = 60 * S
T0 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z
RTOL = 1e-9
#: Indicators whose value depends only on a window of candles (and the UTC day, for VWAP):
#: warmed from a stored tail, they equal an uninterrupted run's (to rounding: a window's
#: running sum is summed afresh every `length` candles, counted from where the fold began).
WINDOWED = ("sma_", "wma_", "bbands_", "roc_", "cci_", "stoch_", "vwap")


def walk(n: int, *, seed: int, start: int = T0, exchange: str = "binance") -> list[Candle]:
    """`n` closed 1m candles of a random walk, as an exchange's history gives them."""
    rng = random.Random(seed)
    price, out = 100.0, []
    for i in range(n):
        close = round(price * (1 + rng.gauss(0, 0.002)), 2)
        high = round(max(price, close) * (1 + rng.random() * 0.001), 2)
        low = round(min(price, close) * (1 - rng.random() * 0.001), 2)
        out.append(Candle(exchange, "BTC-USDT", "1m", start + i * M, price, high, low, close,
                          round(rng.uniform(0.1, 9.0), 4), None, None, True))
        price = close
    return out


def one_pass(candles: list[Candle]) -> dict[int, dict[str, float]]:
    """The indicator values of every candle, folded in one uninterrupted pass."""
    indicators = IndicatorSet(DEFAULT_INDICATORS)
    out = {}
    for c in candles:
        indicators.update(c.ts, c.open, c.high, c.low, c.close, c.volume)
        out[c.ts] = {k: v for k, v in indicators.values().items() if math.isfinite(v)}
    return out


def stored_values(store: SqliteStore, exchange: str = "binance") -> dict[int, dict[str, float]]:
    frame = store.indicators(exchange, "BTC-USDT", "1m", limit=1_000_000)
    return {
        row["ts"]: {k: v for k, v in row.items() if k != "ts" and v is not None}
        for row in frame.iter_rows(named=True)
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite")
    yield store
    store.close()


def test_history_written_in_pages_has_the_indicators_of_one_pass(store: SqliteStore) -> None:
    candles = walk(900, seed=1)
    writer = HistoryWriter(store, DEFAULT_INDICATORS)
    for i in range(0, len(candles), 250):
        writer.write(candles[i:i + 250])
    assert store.candles("binance", "BTC-USDT", "1m", limit=10_000) == candles
    assert stored_values(store) == one_pass(candles)


def test_history_with_its_writes_behind_stores_what_it_stores_without(tmp_path: Path) -> None:
    """Pages in time order, then pages before them (whose warm-up and refold read candles
    handed to the writes' thread, so they wait for them): the stores end equal."""
    candles = walk(3000, seed=8)
    pages = [candles[i:i + 250] for i in range(1000, 3000, 250)]
    pages += [candles[i:i + 250] for i in range(0, 1000, 250)]
    stores = []
    for name, behind in (("direct", None), ("behind", WriteBehind(depth=2))):
        store = SqliteStore(tmp_path / f"{name}.sqlite")
        writer = HistoryWriter(store, DEFAULT_INDICATORS, behind=behind)
        for page in pages:
            writer.write(page)
        if behind is not None:
            behind.close()
        stores.append(store)
    direct, behind_store = stores
    assert behind_store.candles("binance", "BTC-USDT", "1m", limit=10_000) == candles
    assert stored_values(behind_store) == stored_values(direct)
    for store in stores:
        store.close()


def test_history_written_before_stored_candles_recomputes_theirs(store: SqliteStore) -> None:
    candles = walk(600, seed=2)
    HistoryWriter(store, DEFAULT_INDICATORS).write(candles[300:])
    report = HistoryWriter(store, DEFAULT_INDICATORS).write(candles[:300])
    assert (report.candles, report.refolded) == (300, 300)
    assert stored_values(store) == one_pass(candles)


def test_filling_a_hole_folds_in_what_follows_only_up_to_through(store: SqliteStore) -> None:
    candles = walk(400, seed=3)
    hole, rest = candles[100:150], candles[:100] + candles[150:]
    store.upsert_candles(rest)
    report = HistoryWriter(store, DEFAULT_INDICATORS).write(hole, through_ns=candles[200].ts)
    assert (report.candles, report.refolded) == (50, 50)
    expected = one_pass(candles)
    got = stored_values(store)
    assert [ts for ts in got] == [c.ts for c in candles[100:200]]
    # Warmed from the 100 candles stored before the hole, windows up to 100 candles long are
    # right, and so is VWAP, whose day started with the first candle.
    for ts, values in got.items():
        for key, value in values.items():
            if key.startswith(WINDOWED):
                assert value == pytest.approx(expected[ts][key], rel=RTOL), key


def test_a_resumed_history_matches_one_pass_but_for_the_level_of_obv(store: SqliteStore) -> None:
    candles = walk(3000, seed=4)
    HistoryWriter(store, DEFAULT_INDICATORS).write(candles[:2500])
    HistoryWriter(store, DEFAULT_INDICATORS).write(candles[2500:])  # a new run: warmed
    expected, got = one_pass(candles), stored_values(store)
    assert got.keys() == expected.keys()
    for ts in (c.ts for c in candles[2500:]):
        assert got[ts].keys() == expected[ts].keys()
        for key, value in got[ts].items():
            if not key.startswith("obv"):  # a running total, counted from the warm-up
                assert value == pytest.approx(expected[ts][key], rel=RTOL, abs=1e-12), key


def test_stored_history_is_the_newest_closed_candles_before_a_time(store: SqliteStore) -> None:
    candles = walk(50, seed=5)
    forming = Candle("binance", "BTC-USDT", "1m", candles[-1].ts + M, 1, 1, 1, 1, 1, None,
                     None, False)
    store.upsert_candles([*candles, forming])
    history = StoredHistory(store, count=10)
    assert history("binance", "BTC-USDT", "1m", candles[30].ts) == candles[20:30]
    assert history("binance", "BTC-USDT", "1m", forming.ts + M) == candles[41:]
    assert history("binance", "ETH-USDT", "1m", forming.ts) == []


def test_a_flows_history_reads_only_the_markets_stored_when_it_started(
    store: SqliteStore,
) -> None:
    candles = walk(30, seed=6)
    store.upsert_candles(candles)
    history = StoredHistory(store, count=10, stored_markets_only=True)
    assert history("binance", "BTC-USDT", "1m", candles[-1].ts) == candles[19:29]
    store.upsert_candles([Candle("binance", "ETH-USDT", "1m", T0, 1, 1, 1, 1, 1, None, None,
                                 True)])
    assert history("binance", "ETH-USDT", "1m", T0 + M) == []  # not stored at the start
    assert StoredHistory(store, count=10)("binance", "ETH-USDT", "1m", T0 + M) != []


def test_a_forming_candle_is_not_history(store: SqliteStore) -> None:
    forming = Candle("binance", "BTC-USDT", "1m", T0, 1, 1, 1, 1, 1, None, None, False)
    with pytest.raises(ValueError, match="still forming"):
        HistoryWriter(store, DEFAULT_INDICATORS).write([forming])
    assert store.candles("binance", "BTC-USDT", "1m") == []


def live_run(store: SqliteStore, trades: list[Trade], *, warm: bool) -> list[Candle]:
    """A fresh flow over `trades` (stored history warming it, or not); the closed 1m candles
    it publishes, with their indicators, and what it stores written to `store`."""
    out: list[FlowOutput] = []
    flow = build_flow(
        TestingSource([RawMessage("trades.sim.BTC-USDT", encode(trades), "")]),
        TestingSink(out),
        timeframes=parse_timeframes("1m"),
        indicators=parse_indicators("sma:20,ema:20"),
        now_ns=lambda: trades[-1].ts + M,
        flush_at_eof=True,
        history=StoredHistory(store, count=2000, stored_markets_only=True) if warm else None,
    )
    run_main(flow)
    for item in out:
        store.upsert_candles(item.candles)
        store.upsert_indicator_values(item.indicators)
    return [c for item in out for c in item.updates if c.closed and c.indicators is not None]


def minute_trades(minutes: range) -> list[Trade]:
    rng = random.Random(7)
    return [
        Trade("sim", "BTC-USDT", T0 + m * M + k * 10 * S, round(100 + rng.gauss(0, 3), 2),
              0.5, "buy", str(m * 6 + k))
        for m in minutes for k in range(6)
    ]


def test_after_a_restart_the_first_live_sma_equals_the_batch_sma_of_the_stored_candles(
    store: SqliteStore,
) -> None:
    live_run(store, minute_trades(range(30)), warm=True)  # the first run: 30 minutes stored
    first_live = live_run(store, minute_trades(range(30, 32)), warm=True)[0]
    stored = store.candles("sim", "BTC-USDT", "1m", end_ns=first_live.ts + M)
    batch = ta.sma(pd.Series([c.close for c in stored]), length=20)
    assert first_live.ts == T0 + 30 * M
    assert first_live.indicators is not None
    assert first_live.indicators["sma_20"] == pytest.approx(batch.iloc[-1], rel=RTOL)
    # Without the warm-up, the first live candle has no SMA yet.
    cold = SqliteStore(store.path.with_name("cold.sqlite"))
    cold_first = live_run(cold, minute_trades(range(30, 32)), warm=False)[0]
    assert cold_first.indicators is not None
    assert "sma_20" not in cold_first.indicators
    cold.close()
