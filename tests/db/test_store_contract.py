"""The contract every store passes: one suite, run over SQLite and (when configured) QuestDB."""

from __future__ import annotations

import math
import random
import threading
from typing import TypedDict

import polars as pl
import pytest

from db.backtest_store import BACKTEST_EQUITY_SCHEMA, BACKTEST_TRADE_SCHEMA, BacktestRecord
from db.candle_store import CANDLE_SCHEMA, SymbolSummary
from db.indicator_store import IndicatorPoint, IndicatorValues
from db.store import Store
from market.aggregator import CandleAggregator
from market.messages import Candle, Trade
from market.timeframes import Timeframe
from tests.db.conftest import StoreFactory

S = 1_000_000_000
M = 60 * S
T0 = 1_700_000_400 * S  # 2023-11-14T22:20:00Z, a whole hour is 1_699_999_200 * S


def candle(
    ts: int,
    close: float = 1.5,
    *,
    symbol: str = "BTC-USDT",
    exchange: str = "sim",
    timeframe: str = "1m",
    closed: bool = True,
) -> Candle:
    return Candle(exchange, symbol, timeframe, ts, 1.0, 2.0, 0.5, close, 3.0, 4, 1.25, closed)


def minutes(n: int, **kwargs: object) -> list[Candle]:
    return [candle(T0 + i * M, float(i), **kwargs) for i in range(n)]  # type: ignore[arg-type]  # test overrides: each a real field


# Candles ------------------------------------------------------------------------------------


def test_writing_the_same_candles_twice_leaves_one_row_each(store: Store) -> None:
    store.upsert_candles(minutes(5))
    store.upsert_candles(minutes(5))
    assert store.candles("sim", "BTC-USDT", "1m") == minutes(5)


def test_a_correction_replaces_the_candle_with_the_same_key(store: Store) -> None:
    store.upsert_candles(minutes(3))
    amended = Candle("sim", "BTC-USDT", "1m", T0 + M, 1.0, 9.0, 0.25, 8.0, 7.5, 6, 4.5, True)
    store.upsert_candles([amended])
    assert store.candles("sim", "BTC-USDT", "1m") == [minutes(3)[0], amended, minutes(3)[2]]


def test_every_field_round_trips_exactly(store: Store) -> None:
    odd = Candle("binance", "ETH-USDT", "1s", T0 + 7 * S, 0.1, 0.30000000000000004, 1e-12,
                 123456.789012345, 2.5e-9, 2**40, 1 / 3, False)
    store.upsert_candles([odd])
    assert store.candles("binance", "ETH-USDT", "1s") == [odd]


def exchange_candle(ts: int, close: float = 1.5) -> Candle:
    """A candle as an exchange's OHLCV history gives it: no trade count, no VWAP."""
    return Candle("binance", "BTC-USDT", "1m", ts, 1.0, 2.0, 0.5, close, 3.0, None, None, True)


def test_a_candle_without_trade_count_or_vwap_reads_back_with_neither(store: Store) -> None:
    stored = [exchange_candle(T0), candle(T0 + M, exchange="binance")]
    store.upsert_candles(stored)
    assert store.candles("binance", "BTC-USDT", "1m") == stored
    assert store.latest_candles("1m") == stored[1:]
    frame = store.candles_frame("binance", "BTC-USDT", "1m")
    assert frame["trades"].to_list() == [None, 4]
    assert frame["vwap"].to_list() == [None, 1.25]


def test_a_resampled_bucket_has_a_trade_count_and_vwap_only_if_every_source_candle_has(
    store: Store,
) -> None:
    known = [candle(HOUR0 + i * M, exchange="binance") for i in range(5)]
    mixed = [exchange_candle(HOUR0 + 5 * M)] + [
        candle(HOUR0 + i * M, exchange="binance") for i in range(6, 10)
    ]
    store.upsert_candles(known + mixed)
    first, second = store.resample("binance", "BTC-USDT", "1m", "5m")
    assert (first.trades, first.vwap) == (20, 1.25)
    assert (second.trades, second.vwap) == (None, None)
    assert (second.open, second.high, second.low, second.close, second.volume) == (
        1.0, 2.0, 0.5, 1.5, 15.0
    )


def test_a_range_with_a_limit_gives_the_newest_oldest_first(store: Store) -> None:
    store.upsert_candles(minutes(10))
    got = store.candles("sim", "BTC-USDT", "1m", start_ns=T0 + 2 * M, end_ns=T0 + 8 * M, limit=3)
    assert [c.close for c in got] == [5.0, 6.0, 7.0]


def test_from_start_pages_forward_from_the_oldest(store: Store) -> None:
    store.upsert_candles(minutes(10))
    first = store.candles("sim", "BTC-USDT", "1m", start_ns=T0 + 2 * M, limit=3, from_start=True)
    assert [c.close for c in first] == [2.0, 3.0, 4.0]
    after = first[-1].ts + 1
    second = store.candles("sim", "BTC-USDT", "1m", start_ns=after, limit=3, from_start=True)
    assert [c.close for c in second] == [5.0, 6.0, 7.0]


def test_range_bounds_include_start_and_exclude_end(store: Store) -> None:
    store.upsert_candles(minutes(4))
    got = store.candles("sim", "BTC-USDT", "1m", start_ns=T0 + M, end_ns=T0 + 3 * M)
    assert [c.ts for c in got] == [T0 + M, T0 + 2 * M]


def test_series_are_kept_apart_by_exchange_symbol_and_timeframe(store: Store) -> None:
    store.upsert_candles(
        minutes(2) + minutes(3, symbol="ETH-USDT") + minutes(4, timeframe="1s")
        + minutes(5, exchange="binance")
    )
    assert len(store.candles("sim", "BTC-USDT", "1m")) == 2
    assert len(store.candles("sim", "ETH-USDT", "1m")) == 3
    assert len(store.candles("sim", "BTC-USDT", "1s")) == 4
    assert len(store.candles("binance", "BTC-USDT", "1m")) == 5
    assert store.candles("sim", "SOL-USDT", "1m") == []


def test_candles_frame_holds_the_range_as_typed_columns(store: Store) -> None:
    store.upsert_candles(minutes(5))
    frame = store.candles_frame("sim", "BTC-USDT", "1m", T0 + M, T0 + 4 * M)
    assert frame.schema == pl.Schema(CANDLE_SCHEMA)
    assert frame["ts"].to_list() == [T0 + M, T0 + 2 * M, T0 + 3 * M]
    assert frame["close"].to_list() == [1.0, 2.0, 3.0]
    assert store.candles_frame("sim", "BTC-USDT", "1m", 0, T0).height == 0


class Page(TypedDict, total=False):
    """Paging arguments of `candles_frame` and `candles`."""

    limit: int
    from_start: bool


def test_candles_frame_pages_like_candles(store: Store) -> None:
    store.upsert_candles(minutes(6))
    pages: list[Page] = [{"limit": 2}, {"limit": 2, "from_start": True}, {"limit": 0}, {}]
    for kwargs in pages:
        frame = store.candles_frame("sim", "BTC-USDT", "1m", T0 + M, None, **kwargs)
        objects = store.candles(
            "sim", "BTC-USDT", "1m", start_ns=T0 + M, limit=kwargs.get("limit", 100),
            from_start=kwargs.get("from_start", False),
        )
        assert frame.schema == pl.Schema(CANDLE_SCHEMA)
        assert frame["ts"].to_list() == [c.ts for c in objects], kwargs
        assert frame["close"].to_list() == [c.close for c in objects], kwargs


def test_candles_frame_reads_only_the_columns_asked_for(store: Store) -> None:
    store.upsert_candles(minutes(4))
    whole = store.candles_frame("sim", "BTC-USDT", "1m", limit=3)
    some = store.candles_frame("sim", "BTC-USDT", "1m", limit=3, columns=["volume", "close"])
    assert some.columns == ["ts", "close", "volume"]  # ts always, in schema order
    assert some.equals(whole.select(some.columns))
    assert store.candles_frame("sim", "BTC-USDT", "1m", columns=[]).columns == ["ts"]
    with pytest.raises(ValueError, match="no candle column ts; DROP"):
        store.candles_frame("sim", "BTC-USDT", "1m", columns=["ts; DROP"])


def test_latest_candles_give_one_per_market_of_the_timeframe(store: Store) -> None:
    store.upsert_candles(
        minutes(3) + minutes(5, symbol="ETH-USDT") + minutes(2, exchange="binance")
        + [candle(T0 + 99 * M, timeframe="1s")]
    )
    latest = store.latest_candles("1m")
    assert [(c.exchange, c.symbol, c.ts) for c in latest] == [
        ("binance", "BTC-USDT", T0 + M),
        ("sim", "BTC-USDT", T0 + 2 * M),
        ("sim", "ETH-USDT", T0 + 4 * M),
    ]
    assert latest[2] == minutes(5, symbol="ETH-USDT")[-1]
    assert [c.exchange for c in store.latest_candles("1m", exchange="binance")] == ["binance"]
    assert store.latest_candles("1h") == []


def test_latest_candle_follows_an_older_correction_and_a_newer_candle(store: Store) -> None:
    store.upsert_candles(minutes(3))
    store.upsert_candles([candle(T0, 42.0)])  # an older correction leaves the latest alone
    assert store.latest_candles("1m")[0].close == 2.0
    store.upsert_candles([candle(T0 + 2 * M, 43.0)])  # a correction of the latest shows
    assert store.latest_candles("1m")[0].close == 43.0


def test_symbols_and_summaries_list_each_market_once(store: Store) -> None:
    store.upsert_candles(
        minutes(3) + minutes(2, timeframe="1s") + minutes(4, symbol="ETH-USDT")
    )
    store.upsert_candles([candle(T0 - 5 * M, 7.0, timeframe="5m")])
    assert store.symbols() == [("sim", "BTC-USDT"), ("sim", "ETH-USDT")]
    assert store.symbol_summaries() == [
        # The latest candle to end is the 1m at T0+2m (ends T0+3m), so its close is the price.
        SymbolSummary("sim", "BTC-USDT", T0 - 5 * M, T0 + 2 * M, 2.0),
        SymbolSummary("sim", "ETH-USDT", T0, T0 + 3 * M, 3.0),
    ]


def test_an_empty_store_answers_every_read_with_nothing(store: Store) -> None:
    store.ping()
    assert store.symbols() == []
    assert store.symbol_summaries() == []
    assert store.latest_candles("1m") == []
    assert store.candles("sim", "BTC-USDT", "1m") == []
    assert store.resample("sim", "BTC-USDT", "1m", "5m") == []
    assert store.indicators("sim", "BTC-USDT", "1m").columns == ["ts"]
    assert store.backtest("nope") is None
    assert store.backtests() == []


# Resampling ---------------------------------------------------------------------------------


def random_trades(seed: int, start_ns: int, span_ns: int, count: int) -> list[Trade]:
    rng = random.Random(seed)
    price = 100.0
    trades = []
    stamps = sorted(rng.randrange(start_ns, start_ns + span_ns) for _ in range(count))
    for i, ts in enumerate(stamps):
        price = round(price * math.exp(rng.gauss(0, 0.002)), 2)
        size = round(rng.expovariate(2.0), 6)
        trades.append(Trade("sim", "BTC-USDT", ts, price, size, "buy", str(i)))
    return trades


def aggregate(trades: list[Trade], timeframes: list[str]) -> dict[str, list[Candle]]:
    """The in-process aggregator's final candles per timeframe, oldest first."""
    aggregator = CandleAggregator([Timeframe.parse(tf) for tf in timeframes])
    latest: dict[tuple[str, int], Candle] = {}
    for c in aggregator.add(trades).candles + aggregator.flush().candles:
        latest[(c.timeframe, c.ts)] = c
    return {
        tf: sorted((c for (name, _), c in latest.items() if name == tf), key=lambda c: c.ts)
        for tf in timeframes
    }


def assert_same_candles(got: list[Candle], want: list[Candle]) -> None:
    """OHLC, trade count and keys exactly; volume and vwap to 1e-12 relative, because the store
    sums per-minute sums where the aggregator sums the trades in one run (floating point
    addition depends on grouping). `closed` is checked by its own tests."""
    assert [(c.ts, c.open, c.high, c.low, c.close, c.trades) for c in got] == [
        (c.ts, c.open, c.high, c.low, c.close, c.trades) for c in want
    ]
    for g, w in zip(got, want, strict=True):
        assert (g.exchange, g.symbol, g.timeframe) == (w.exchange, w.symbol, w.timeframe)
        assert g.volume == pytest.approx(w.volume, rel=1e-12)
        assert g.vwap == pytest.approx(w.vwap, rel=1e-12)


HOUR0 = 1_699_999_200 * S  # a whole hour, and a whole 2h bucket (1_699_999_200 / 7200 = 236111)


@pytest.mark.parametrize("target", ["5m", "15m", "1h", "2h"])
def test_resampling_minutes_equals_the_aggregator_on_the_same_trades(
    store: Store, target: str
) -> None:
    # 5 hours and 7 minutes of trades with quiet gaps: buckets with missing minutes included.
    trades = random_trades(7, HOUR0 + 3 * M, 5 * 3600 * S + 4 * M, 6000)
    trades = [t for t in trades if not HOUR0 + 70 * M <= t.ts < HOUR0 + 100 * M]
    expected = aggregate(trades, ["1m", target])
    store.upsert_candles(expected["1m"])
    got = store.resample("sim", "BTC-USDT", "1m", target, limit=10_000)
    assert_same_candles(got, expected[target])


def test_resampling_selects_buckets_by_range_limit_and_direction(store: Store) -> None:
    trades = random_trades(11, HOUR0, 4 * 3600 * S, 3000)
    expected = aggregate(trades, ["1m", "15m"])["15m"]
    store.upsert_candles(aggregate(trades, ["1m"])["1m"])
    start, end = HOUR0 + 20 * M, HOUR0 + 200 * M  # bucket starts 30m ... 195m
    in_range = [c for c in expected if start <= c.ts < end]
    newest = store.resample("sim", "BTC-USDT", "1m", "15m", start_ns=start, end_ns=end, limit=4)
    assert_same_candles(newest, in_range[-4:])
    oldest = store.resample(
        "sim", "BTC-USDT", "1m", "15m", start_ns=start, end_ns=end, limit=4, from_start=True
    )
    assert_same_candles(oldest, in_range[:4])
    assert_same_candles(store.resample("sim", "BTC-USDT", "1m", "15m", limit=3), expected[-3:])


def test_resampling_finds_the_newest_buckets_across_a_gap(store: Store) -> None:
    store.upsert_candles([candle(HOUR0 + i * M) for i in (0, 1, 2)] + [candle(HOUR0 + 600 * M)])
    got = store.resample("sim", "BTC-USDT", "1m", "5m", limit=2)
    assert [c.ts for c in got] == [HOUR0, HOUR0 + 600 * M]
    first = store.resample("sim", "BTC-USDT", "1m", "5m", limit=2, from_start=True)
    assert [c.ts for c in first] == [HOUR0, HOUR0 + 600 * M]


def test_a_resampled_bucket_is_closed_once_its_source_reaches_its_end(store: Store) -> None:
    store.upsert_candles(
        [candle(HOUR0 + i * M) for i in range(5)]  # bucket 0: complete
        + [candle(HOUR0 + 5 * M), candle(HOUR0 + 6 * M, closed=False)]  # bucket 1: still forming
        + [candle(HOUR0 + i * M) for i in (10, 12)]  # bucket 2: the series ends before its end
    )
    got = store.resample("sim", "BTC-USDT", "1m", "5m")
    assert [(c.ts, c.closed) for c in got] == [
        (HOUR0, True), (HOUR0 + 5 * M, False), (HOUR0 + 10 * M, False)
    ]
    store.upsert_candles([candle(HOUR0 + 14 * M)])
    assert store.resample("sim", "BTC-USDT", "1m", "5m")[-1].closed is True


def test_resampling_into_a_timeframe_the_source_does_not_divide_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        store.resample("sim", "BTC-USDT", "1h", "90m")


# Known gaps ---------------------------------------------------------------------------------


def test_known_gaps_read_back_oldest_first_per_series(store: Store) -> None:
    store.add_known_gaps("binance", "BTC-USDT", "1m", [(T0 + 10 * M, T0 + 12 * M), (T0, T0 + M)])
    store.add_known_gaps("binance", "BTC-USDT", "1h", [(T0, T0 + 3600 * S)])
    store.add_known_gaps("binance", "BTC-USDT", "1m", [])
    assert store.known_gaps("binance", "BTC-USDT", "1m") == [
        (T0, T0 + M), (T0 + 10 * M, T0 + 12 * M)
    ]
    assert store.known_gaps("binance", "BTC-USDT", "1h") == [(T0, T0 + 3600 * S)]
    assert store.known_gaps("binance", "ETH-USDT", "1m") == []


def test_a_known_gap_with_a_stored_start_replaces_it(store: Store) -> None:
    store.add_known_gaps("binance", "BTC-USDT", "1m", [(T0, T0 + M)])
    store.add_known_gaps("binance", "BTC-USDT", "1m", [(T0, T0 + 5 * M)])
    assert store.known_gaps("binance", "BTC-USDT", "1m") == [(T0, T0 + 5 * M)]


# Indicators ---------------------------------------------------------------------------------


def points(name: str, values: dict[int, float], timeframe: str = "1m") -> list[IndicatorPoint]:
    return [IndicatorPoint("sim", "BTC-USDT", timeframe, T0 + i * M, name, v)
            for i, v in values.items()]


def test_indicators_read_back_as_one_column_per_name(store: Store) -> None:
    store.upsert_indicators(
        points("sma_20", {0: 1.0, 1: 2.0, 2: 3.0}) + points("macd_12_26_9.hist", {1: -0.5})
        + points("rsi_14", {2: 70.0}, timeframe="1s")
    )
    frame = store.indicators("sim", "BTC-USDT", "1m")
    assert frame.columns == ["ts", "macd_12_26_9.hist", "sma_20"]
    assert frame.schema["sma_20"] == pl.Float64()
    assert frame.rows() == [(T0, None, 1.0), (T0 + M, -0.5, 2.0), (T0 + 2 * M, None, 3.0)]


def test_indicators_select_names_range_and_newest_limit(store: Store) -> None:
    store.upsert_indicators(points("a", {i: float(i) for i in range(10)}) + points("b", {9: 0.5}))
    frame = store.indicators(
        "sim", "BTC-USDT", "1m", ["a", "missing"], start_ns=T0 + M, end_ns=T0 + 8 * M, limit=3
    )
    assert frame.columns == ["ts", "a", "missing"]
    assert frame.rows() == [(T0 + 5 * M, 5.0, None), (T0 + 6 * M, 6.0, None),
                            (T0 + 7 * M, 7.0, None)]
    assert store.indicators("sim", "BTC-USDT", "1m", ["b"])["ts"].to_list() == [T0 + 9 * M]


def test_indicator_values_are_upserted_on_their_key(store: Store) -> None:
    store.upsert_indicators(points("a", {0: 1.0, 1: 2.0}))
    store.upsert_indicators(points("a", {0: 1.0, 1: 2.5}))
    assert store.indicators("sim", "BTC-USDT", "1m").rows() == [(T0, 1.0), (T0 + M, 2.5)]


def test_writing_some_names_keeps_the_other_names_at_that_ts(store: Store) -> None:
    store.upsert_indicators(points("a", {0: 1.0, 1: 2.0}) + points("b", {0: 3.0}))
    store.upsert_indicators(points("b", {0: 4.0, 1: 5.0}) + points("c", {1: 6.0}))
    assert store.indicators("sim", "BTC-USDT", "1m").rows() == [
        (T0, 1.0, 4.0, None), (T0 + M, 2.0, 5.0, 6.0)
    ]


def test_rows_of_values_write_what_their_points_write(store: Store) -> None:
    store.upsert_indicators(points("a", {0: 1.0}) + points("b", {0: 2.0}))
    store.upsert_indicator_values([
        IndicatorValues("sim", "BTC-USDT", "1m", T0, {"b": 2.5, "c": 3.0}),
        IndicatorValues("sim", "BTC-USDT", "1m", T0 + M, {"a": 4.0}),
        IndicatorValues("sim", "ETH-USDT", "1m", T0, {"a": 5.0}),
    ])
    assert store.indicators("sim", "BTC-USDT", "1m").rows() == [
        (T0, 1.0, 2.5, 3.0), (T0 + M, 4.0, None, None)
    ]
    assert store.indicators("sim", "ETH-USDT", "1m").rows() == [(T0, 5.0)]


def test_every_indicator_value_round_trips_exactly(store: Store) -> None:
    odd = [0.1, 0.30000000000000004, 1e-12, 123456.789012345, 2.5e-9, 1 / 3, -7.0, 2.0**60]
    store.upsert_indicators(points("x", dict(enumerate(odd))))
    assert store.indicators("sim", "BTC-USDT", "1m")["x"].to_list() == odd


# Backtests ----------------------------------------------------------------------------------


def record(id: str, created_ns: int, **changes: object) -> BacktestRecord:
    fields: dict[str, object] = dict(
        id=id, status="QUEUED", strategy="ema_cross", exchange="sim", symbol="BTC-USDT",
        timeframe="1m", start_ns=T0, end_ns=T0 + 600 * M, created_ns=created_ns,
        spec_json='{"fast": 10, "slow": 30}',
    )
    fields.update(changes)
    return BacktestRecord(**fields)  # type: ignore[arg-type]  # test overrides: each a real field


def trades_frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "position_id": [f"P-{i % 3}" for i in range(n)],
            "side": ["LONG"] * n,
            "entry_ts": [T0 + i * M for i in range(n)],
            "exit_ts": [T0 + (i + 1) * M if i != 2 else T0 + 10 * M for i in range(n)],
            "entry_price": [100.0 + i for i in range(n)],
            "exit_price": [101.5 + i for i in range(n)],
            "quantity": [0.5] * n,
            "pnl": [0.75] * n,
            "fees": [0.01] * n,
            "net_return": [0.0074] * n,
        },
        schema=BACKTEST_TRADE_SCHEMA,
    )


def equity_frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [T0 + i * M for i in range(n)], "equity": [10_000.0 + i for i in range(n)],
         "position": [float(i % 2) for i in range(n)]},
        schema=BACKTEST_EQUITY_SCHEMA,
    )


def test_a_backtest_record_round_trips_through_its_status_changes(store: Store) -> None:
    queued = record("bt-1", T0)
    store.put_backtest(queued)
    assert store.backtest("bt-1") == queued
    running = record("bt-1", T0, status="RUNNING", started_ns=T0 + S, progress=0.5)
    store.put_backtest(running)
    assert store.backtest("bt-1") == running
    done = record(
        "bt-1", T0, status="SUCCEEDED", started_ns=T0 + S, finished_ns=T0 + 9 * S, progress=1.0,
        metrics_json='{"sharpe": 1.25}',
    )
    store.put_backtest(done)
    assert store.backtest("bt-1") == done
    assert store.backtests() == [done]


def test_backtests_filter_and_list_newest_first(store: Store) -> None:
    sweep = record("sw", T0, kind="sweep", status="RUNNING")
    children = [record(f"sw-{i}", T0 + i * S, sweep_id="sw") for i in range(1, 4)]
    other = record("solo", T0 + 10 * S, status="FAILED", strategy="rsi", error="no data",
                   symbol="ETH-USDT")
    for r in [sweep, *children, other]:
        store.put_backtest(r)
    assert [r.id for r in store.backtests()] == ["solo", "sw-3", "sw-2", "sw-1", "sw"]
    assert [r.id for r in store.backtests(sweep_id="sw")] == ["sw-3", "sw-2", "sw-1"]
    assert [r.id for r in store.backtests(status="FAILED")] == ["solo"]
    assert [r.id for r in store.backtests(strategy="ema_cross", limit=2)] == ["sw-3", "sw-2"]
    assert [r.id for r in store.backtests(symbol="ETH-USDT", exchange="sim")] == ["solo"]
    assert [r.id for r in store.backtests(created_before_ns=T0 + 2 * S)] == ["sw-1", "sw"]
    assert store.backtest("solo") == other


def test_backtest_results_round_trip_and_page(store: Store) -> None:
    store.put_backtest(record("bt-2", T0))
    trades, equity = trades_frame(7), equity_frame(50)
    store.put_backtest_results("bt-2", trades, equity)
    by_exit = trades.sort("exit_ts", "position_id")
    assert store.backtest_trades("bt-2", limit=1000).equals(by_exit)
    assert store.backtest_trades("bt-2", offset=2, limit=3).equals(by_exit.slice(2, 3))
    assert store.backtest_trades("bt-2", offset=7).height == 0
    assert store.backtest_equity("bt-2").equals(equity)
    assert store.backtest_trades("other").schema == pl.Schema(BACKTEST_TRADE_SCHEMA)
    assert store.backtest_equity("other").schema == pl.Schema(BACKTEST_EQUITY_SCHEMA)


def test_storing_results_again_replaces_the_earlier_ones(store: Store) -> None:
    store.put_backtest(record("bt-3", T0))
    store.put_backtest(record("bt-4", T0))
    store.put_backtest_results("bt-3", trades_frame(7), equity_frame(50))
    store.put_backtest_results("bt-4", trades_frame(1), equity_frame(1))
    store.put_backtest_results("bt-3", trades_frame(2), equity_frame(5).reverse())
    assert store.backtest_trades("bt-3").equals(trades_frame(2))
    assert store.backtest_equity("bt-3").equals(equity_frame(5))
    assert store.backtest_trades("bt-4").height == 1


def test_a_swap_replaces_a_record_only_while_it_is_unchanged(store: Store) -> None:
    queued = record("bt-5", T0)
    store.put_backtest(queued)
    first = record("bt-5", T0, status="RUNNING", attempt=1, worker="host-a:41")
    second = record("bt-5", T0, status="RUNNING", attempt=2, worker="host-b:7")
    late = record("bt-5", T0, status="SUCCEEDED", attempt=1, worker="host-a:41", progress=1.0)

    assert store.swap_backtest(queued, first)
    assert store.swap_backtest(first, second)
    # The first attempt's result, read before the second attempt took over, is refused.
    assert not store.swap_backtest(first, late, trades=trades_frame(3), equity=equity_frame(4))
    assert store.backtest("bt-5") == second
    assert store.backtest_trades("bt-5").height == 0
    assert store.backtest_equity("bt-5").height == 0
    assert not store.swap_backtest(record("nope", T0), record("nope", T0, status="RUNNING"))
    assert store.backtest("nope") is None


def test_a_swap_stores_its_results_with_the_record(store: Store) -> None:
    running = record("bt-6", T0, status="RUNNING", attempt=3, worker="w:1")
    store.put_backtest(running)
    done = record("bt-6", T0, status="SUCCEEDED", attempt=3, worker="w:1", progress=1.0,
                  finished_ns=T0 + 5 * S, metrics_json='{"sharpe": 0.5}')

    assert store.swap_backtest(running, done, trades=trades_frame(4), equity=equity_frame(6))
    assert store.backtest("bt-6") == done
    assert store.backtest_trades("bt-6").equals(trades_frame(4).sort("exit_ts", "position_id"))
    assert store.backtest_equity("bt-6").equals(equity_frame(6))


def test_counts_give_the_runs_of_a_sweep_by_status(store: Store) -> None:
    store.put_backtest(record("sweep", T0, kind="sweep", status="RUNNING"))
    statuses = ["SUCCEEDED", "RUNNING", "SUCCEEDED", "QUEUED", "FAILED"]
    for i, status in enumerate(statuses):
        store.put_backtest(record(f"run-{i}", T0 + (i + 1) * S, sweep_id="sweep", status=status))
    store.put_backtest(record("elsewhere", T0 + 9 * S, sweep_id="other", status="QUEUED"))

    assert store.backtest_counts("sweep") == {
        "SUCCEEDED": 2, "RUNNING": 1, "QUEUED": 1, "FAILED": 1}
    assert store.backtest_counts("none") == {}


# Concurrency --------------------------------------------------------------------------------


def test_a_reader_sees_whole_batches_while_a_writer_writes(open_store: StoreFactory) -> None:
    writer, reader = open_store(), open_store()
    batches, size = 40, 50
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for b in range(batches):
                writer.upsert_candles(
                    [candle(T0 + (b * size + i) * S, timeframe="1s") for i in range(size)]
                )
        except BaseException as error:  # handed to the test thread below
            failures.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    counts = []
    while thread.is_alive():
        counts.append(len(reader.candles("sim", "BTC-USDT", "1s", limit=100_000)))
    thread.join()
    counts.append(len(reader.candles("sim", "BTC-USDT", "1s", limit=100_000)))
    assert failures == []
    assert counts[-1] == batches * size
    assert all(n % size == 0 for n in counts)  # never half a batch
    assert counts == sorted(counts)
