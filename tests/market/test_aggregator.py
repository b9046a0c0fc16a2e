from __future__ import annotations

import random
from collections.abc import Iterable

import polars as pl
import pytest

from market.aggregator import CandleAggregator
from market.messages import Candle, Trade
from market.timeframes import parse_timeframes
from tests.market.batch_reference import batch_candles

S = 1_000_000_000
T0 = 1_700_000_040 * S  # a whole minute: 2023-11-14T22:14:00Z
SECOND, MINUTE = parse_timeframes("1s,1m")


def trade(ts: int, price: float, size: float, trade_id: str, symbol: str = "BTC-USDT") -> Trade:
    return Trade("sim", symbol, ts, price, size, "buy", trade_id)


def final_candles(updates: Iterable[Candle]) -> dict[tuple[str, str, int], Candle]:
    """The last update of each candle, as a store that upserts them would hold."""
    return {(c.symbol, c.timeframe, c.ts): c for c in updates}


def test_candle_holds_open_high_low_close_volume_count_and_vwap() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=0)
    out = agg.add([
        trade(T0 + 100, 10.0, 1.0, "1"),
        trade(T0 + 200, 12.0, 2.0, "2"),
        trade(T0 + 300, 9.0, 1.0, "3"),
        trade(T0 + 400, 11.0, 4.0, "4"),
    ])
    assert out.candles == [
        Candle("sim", "BTC-USDT", "1s", T0, 10.0, 12.0, 9.0, 11.0, 8.0, 4,
               (10.0 + 24.0 + 9.0 + 44.0) / 8.0, False)
    ]


def test_trades_on_a_bucket_boundary_open_the_later_bucket() -> None:
    agg = CandleAggregator([SECOND, MINUTE], allowed_lateness_ns=0)
    agg.add([trade(T0 + S - 1, 10.0, 1.0, "1")])
    out = agg.add([trade(T0 + S, 11.0, 1.0, "2")])
    by_key = {(c.timeframe, c.ts): c for c in out.candles}
    assert by_key[("1s", T0)].closed and by_key[("1s", T0)].close == 10.0
    assert not by_key[("1s", T0 + S)].closed and by_key[("1s", T0 + S)].open == 11.0
    assert by_key[("1m", T0)].trades == 2 and not by_key[("1m", T0)].closed


def test_a_trade_of_the_next_bucket_closes_the_candle() -> None:
    agg = CandleAggregator([MINUTE], allowed_lateness_ns=5 * S)
    first = agg.add([trade(T0 + 5 * S, 10.0, 1.0, "1")])
    assert [c.closed for c in first.candles] == [False]
    second = agg.add([trade(T0 + 61 * S, 11.0, 1.0, "2")])
    assert [(c.ts, c.closed) for c in second.candles] == [(T0, True), (T0 + 60 * S, False)]


def test_the_watermark_closes_a_quiet_symbols_candle() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=2 * S)
    agg.add([trade(T0, 10.0, 1.0, "1", symbol="ETH-USDT")])
    agg.add([trade(T0 + 2 * S, 20.0, 1.0, "1")])  # watermark T0: ETH's candle still open
    out = agg.add([trade(T0 + 3 * S, 21.0, 1.0, "2")])  # watermark T0 + 1 s: past its end
    closed = [c for c in out.candles if c.symbol == "ETH-USDT"]
    assert [(c.ts, c.closed) for c in closed] == [(T0, True)]
    assert [(c.ts, c.closed) for c in agg.advance(T0 + 10 * S)] == [
        (T0 + 3 * S, True)
    ]


def test_late_trade_within_lateness_amends_closed_candle() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=5 * S)
    agg.add([trade(T0 + 100, 10.0, 1.0, "1"), trade(T0 + S + 100, 11.0, 1.0, "2")])
    out = agg.add([trade(T0 + 500, 8.0, 3.0, "3")])
    assert out.late == []
    assert out.candles == [
        Candle("sim", "BTC-USDT", "1s", T0, 10.0, 10.0, 8.0, 8.0, 4.0, 2, 34.0 / 4.0, True)
    ]


def test_trade_beyond_lateness_is_returned_unapplied() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=1 * S)
    agg.add([trade(T0 + 10 * S, 10.0, 1.0, "1")])
    late = trade(T0 + 8 * S, 9.0, 1.0, "2")
    out = agg.add([late])
    assert out.late == [late] and out.candles == []


def test_duplicate_trade_ids_are_dropped_and_counted() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=5 * S)
    out = agg.add([trade(T0, 10.0, 1.0, "7"), trade(T0 + 1, 99.0, 5.0, "7")])
    other_symbol = agg.add([trade(T0 + 2, 50.0, 1.0, "7", symbol="ETH-USDT")])
    assert out.duplicates == 1 and out.candles[0].trades == 1 and out.candles[0].high == 10.0
    assert other_symbol.duplicates == 0


def test_flush_closes_every_forming_candle() -> None:
    agg = CandleAggregator([SECOND, MINUTE])
    agg.add([trade(T0, 10.0, 1.0, "1"), trade(T0, 10.0, 1.0, "2", symbol="ETH-USDT")])
    flushed = agg.flush()
    assert len(flushed) == 4 and all(c.closed for c in flushed)
    assert agg.flush() == []


def random_trades(n: int, *, seed: int, disorder_ns: int) -> list[Trade]:
    """Trades over several symbols at about 1,000/s, jittered out of order by up to disorder_ns,
    with some duplicates and some hopelessly late trades mixed in."""
    rng = random.Random(seed)
    symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    prices = dict.fromkeys(symbols, 100.0)
    trades = []
    for i in range(n):
        symbol = rng.choice(symbols)
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.001)), 4)
        ts = T0 + i * 1_000_000 - rng.randrange(disorder_ns + 1)
        size = 0.0 if rng.random() < 0.01 else round(rng.expovariate(1.0), 6)
        trades.append(trade(ts, prices[symbol], size, str(i), symbol=symbol))
        if rng.random() < 0.01:
            trades.append(trades[-rng.randrange(1, min(len(trades), 100) + 1)])  # redelivered
        if rng.random() < 0.005:
            trades.append(trade(ts - 60 * S, 1.0, 1.0, f"late-{i}", symbol=symbol))
    return trades


@pytest.mark.parametrize("batch_size", [1, 997])
def test_candles_equal_a_batch_aggregation_of_100k_random_trades(batch_size: int) -> None:
    timeframes = parse_timeframes("1s,1m,5m")
    lateness = 2 * S
    trades = random_trades(100_000, seed=batch_size, disorder_ns=3 * S // 2)
    agg = CandleAggregator(timeframes, allowed_lateness_ns=lateness)
    updates: list[Candle] = []
    late = duplicates = 0
    for i in range(0, len(trades), batch_size):
        result = agg.add(trades[i:i + batch_size])
        updates.extend(result.candles)
        late += len(result.late)
        duplicates += result.duplicates
    updates.extend(agg.flush())

    expected = batch_candles(trades, timeframes, lateness)
    assert final_candles(updates) == expected  # every field, to the last bit
    assert late > 100 and duplicates > 100  # both rules were exercised
    assert late + duplicates + sum(
        c.trades for (_, tf, _), c in expected.items() if tf == "1s"
    ) == len(trades)


def test_in_order_candles_equal_polars_group_by_dynamic() -> None:
    trades = [t for t in random_trades(20_000, seed=7, disorder_ns=0) if "late" not in t.trade_id]
    trades = list({(t.symbol, t.trade_id): t for t in trades}.values())
    agg = CandleAggregator([MINUTE], allowed_lateness_ns=0)
    candles = final_candles([*agg.add(trades).candles, *agg.flush()])

    frame = pl.DataFrame(
        {"symbol": [t.symbol for t in trades], "ts": [t.ts for t in trades],
         "price": [t.price for t in trades], "size": [t.size for t in trades]}
    ).with_columns(pl.from_epoch("ts", time_unit="ns").alias("time"))
    expected = (
        frame.sort("symbol", "time", maintain_order=True)
        .group_by_dynamic("time", every="1m", group_by="symbol", closed="left", label="left")
        .agg(
            pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"), pl.len().alias("trades"),
        )
    )
    assert expected.height == len(candles)
    for row in expected.iter_rows(named=True):
        ts = int(row["time"].timestamp()) * S
        got = candles[(row["symbol"], "1m", ts)]
        assert (got.open, got.high, got.low, got.close, got.trades) == (
            row["open"], row["high"], row["low"], row["close"], row["trades"]
        )
        # polars sums in blocks, a sequential fold does not: equal to rounding, not bits.
        assert got.volume == pytest.approx(row["volume"], rel=1e-12)
