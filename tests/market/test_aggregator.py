from __future__ import annotations

import pickle
import random
from collections.abc import Iterable

import msgspec
import polars as pl
import pytest

from market.aggregator import CandleAggregator
from market.messages import Candle, Trade
from market.spike_filter import SpikeFilter
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
    assert [(c.ts, c.closed) for c in agg.advance(T0 + 10 * S).candles] == [
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
    flushed = agg.flush().candles
    assert len(flushed) == 4 and all(c.closed for c in flushed)
    assert agg.flush().candles == []


def test_a_trade_in_the_latest_bucket_after_a_flush_opens_a_closed_candle() -> None:
    # The flush freed the slot of the series' latest bucket: the trade cannot land in it,
    # and opens that bucket again as a late trade would, closed, holding only itself.
    agg = CandleAggregator([SECOND, MINUTE], allowed_lateness_ns=0)
    agg.add([trade(T0 + 100, 10.0, 1.0, "1")])
    agg.flush()
    out = agg.add([trade(T0 + 200, 12.0, 2.0, "2")])
    assert out.candles == [
        Candle("sim", "BTC-USDT", "1s", T0, 12.0, 12.0, 12.0, 12.0, 2.0, 1, 12.0, True),
        Candle("sim", "BTC-USDT", "1m", T0, 12.0, 12.0, 12.0, 12.0, 2.0, 1, 12.0, True),
    ]


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


def trade_count(candle: Candle) -> int:
    """A candle's number of trades: known for every candle built from trades."""
    assert candle.trades is not None
    return candle.trades


@pytest.mark.parametrize(("batch_size", "count"), [(1, 20_000), (997, 100_000)])
def test_candles_equal_a_batch_aggregation_of_random_trades(batch_size: int, count: int) -> None:
    timeframes = parse_timeframes("1s,1m,5m")
    lateness = 2 * S
    trades = random_trades(count, seed=batch_size, disorder_ns=3 * S // 2)
    agg = CandleAggregator(timeframes, allowed_lateness_ns=lateness)
    updates: list[Candle] = []
    late = duplicates = 0
    for i in range(0, len(trades), batch_size):
        result = agg.add(trades[i:i + batch_size])
        updates.extend(result.candles)
        late += len(result.late)
        duplicates += result.duplicates
    updates.extend(agg.flush().candles)

    expected = batch_candles(trades, timeframes, lateness)
    assert final_candles(updates) == expected  # every field, to the last bit
    assert late > count // 1000 and duplicates > count // 1000  # both rules were exercised
    assert late + duplicates + sum(
        trade_count(c) for (_, tf, _), c in expected.items() if tf == "1s"
    ) == len(trades)


def test_in_order_candles_equal_polars_group_by_dynamic() -> None:
    trades = [t for t in random_trades(20_000, seed=7, disorder_ns=0) if "late" not in t.trade_id]
    trades = list({(t.symbol, t.trade_id): t for t in trades}.values())
    agg = CandleAggregator([MINUTE], allowed_lateness_ns=0)
    candles = final_candles([*agg.add(trades).candles, *agg.flush().candles])

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


def test_every_candle_becomes_final_once_in_time_order_per_series() -> None:
    timeframes = parse_timeframes("1s,1m")
    agg = CandleAggregator(timeframes, allowed_lateness_ns=2 * S)
    trades = random_trades(20_000, seed=3, disorder_ns=S)
    final: list[Candle] = []
    for i in range(0, len(trades), 333):
        final.extend(agg.add(trades[i:i + 333]).final.to_candles())
    final.extend(agg.flush().final.to_candles())
    keys = [(c.symbol, c.timeframe, c.ts) for c in final]
    assert len(keys) == len(set(keys))
    assert final_candles(final) == batch_candles(trades, timeframes, 2 * S)
    for series in {(c.symbol, c.timeframe) for c in final}:
        starts = [c.ts for c in final if (c.symbol, c.timeframe) == series]
        assert starts == sorted(starts)


def test_a_candle_is_final_only_once_the_watermark_passes_its_end() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=2 * S)
    agg.add([trade(T0, 10.0, 1.0, "1")])
    closed = agg.add([trade(T0 + S, 11.0, 1.0, "2")])
    assert [(c.ts, c.closed) for c in closed.candles] == [(T0, True), (T0 + S, False)]
    assert len(closed.final) == 0  # closed, but a late trade may still amend it
    amended = agg.add([trade(T0 + 500, 9.0, 1.0, "3")])
    assert amended.candles[0].trades == 2 and len(amended.final) == 0
    final = agg.add([trade(T0 + 3 * S, 12.0, 1.0, "4")]).final.to_candles()
    assert [(c.ts, c.trades, c.low) for c in final] == [(T0, 2, 9.0)]


def test_string_and_integer_trade_ids_give_the_same_candles() -> None:
    trades = random_trades(10_000, seed=11, disorder_ns=S)
    renamed = [msgspec.structs.replace(t, trade_id=f"id-{t.trade_id}") for t in trades]
    timeframes = parse_timeframes("1s,1m")

    def run(batch: list[Trade]) -> dict[tuple[str, str, int], Candle]:
        agg = CandleAggregator(timeframes, allowed_lateness_ns=2 * S)
        updates = [c for i in range(0, len(batch), 101) for c in agg.add(batch[i:i + 101]).candles]
        return final_candles([*updates, *agg.flush().candles])

    assert run(renamed) == run(trades) == batch_candles(trades, timeframes, 2 * S)


def test_trade_ids_are_forgotten_once_the_watermark_passes_them() -> None:
    agg = CandleAggregator([SECOND], allowed_lateness_ns=S)
    for second in range(200):
        agg.add([trade(T0 + second * S + i * 1000, 10.0, 1.0, str(second * 1000 + i))
                 for i in range(1000)])
    # 200,000 ids seen, but only the last lateness window's are kept.
    assert agg._id_table.shape[0] <= 16_384
    late_repeat = agg.add([trade(T0, 10.0, 1.0, "0")])
    assert len(late_repeat.late) == 1 and late_repeat.duplicates == 0


def test_a_pickled_aggregator_carries_on_exactly() -> None:
    timeframes = parse_timeframes("1s,1m")
    trades = random_trades(20_000, seed=5, disorder_ns=S)
    whole = CandleAggregator(timeframes, allowed_lateness_ns=2 * S)
    expected = final_candles([*whole.add(trades).candles, *whole.flush().candles])
    first = CandleAggregator(timeframes, allowed_lateness_ns=2 * S)
    updates = first.add(trades[:7_000]).candles
    resumed: CandleAggregator = pickle.loads(pickle.dumps(first))
    updates += [*resumed.add(trades[7_000:]).candles, *resumed.flush().candles]
    assert final_candles(updates) == expected


def test_the_spike_filter_rejects_a_lone_bad_print_but_follows_a_real_move() -> None:
    agg = CandleAggregator([MINUTE], allowed_lateness_ns=S, spike_filter=SpikeFilter(sigmas=6))
    prices = [100.0 + 0.02 * ((i * 7) % 5 - 2) for i in range(50)]
    prices += [130.0]  # a bad print
    prices += [100.0, 100.02, 99.98]
    prices += [110.0, 110.02, 110.01, 110.03]  # the market really moved
    result = agg.add([trade(T0 + i * 10**8, p, 1.0, str(i)) for i, p in enumerate(prices)])
    assert [t.price for t in result.spikes] == [130.0, 110.0, 110.02]
    candle = result.candles[0]
    assert candle.high == 110.03 and candle.close == 110.03
    assert candle.trades == len(prices) - 3


def test_many_markets_grow_the_state_without_losing_any() -> None:
    agg = CandleAggregator([SECOND, MINUTE], allowed_lateness_ns=0)
    trades = [trade(T0 + i, 1.0 + i, 1.0, "1", symbol=f"S{i}-USDT") for i in range(300)]
    out = agg.add(trades)
    assert len(out.candles) == 600 and {c.symbol for c in out.candles} == {
        f"S{i}-USDT" for i in range(300)
    }
    assert agg.current(299, 1) == Candle(
        "sim", "S299-USDT", "1m", T0, 300.0, 300.0, 300.0, 300.0, 1.0, 1, 300.0, False
    )
