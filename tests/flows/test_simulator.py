from __future__ import annotations

from flows.simulator import DEFAULT_SYMBOLS, TradeSimulator
from market.messages import trade_problem

S = 1_000_000_000


def run(seed: int) -> list[object]:
    sim = TradeSimulator(seed=seed)
    return [t for symbol, n in sim.split(500).items() for t in sim.trades(symbol, n, 0, S)]


def test_the_same_seed_gives_the_same_trades() -> None:
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_trades_are_valid_with_increasing_ids_and_both_sides() -> None:
    sim = TradeSimulator(seed=1)
    trades = sim.trades("BTC-USDT", 1000, 10 * S, 11 * S)
    assert all(trade_problem(t, now_ns=20 * S, max_future_ns=0) is None for t in trades)
    assert [t.trade_id for t in trades] == [str(i) for i in range(1, 1001)]
    assert [t.ts for t in trades] == sorted(t.ts for t in trades)
    assert trades[0].ts >= 10 * S and trades[-1].ts < 11 * S
    assert {t.side for t in trades} == {"buy", "sell"}


def test_prices_walk_plausibly_and_keep_their_tick() -> None:
    sim = TradeSimulator(seed=1)
    xrp = sim.trades("XRP-USDT", 5000, 0, S)
    prices = [t.price for t in xrp]
    assert min(prices) > 0.4 and max(prices) < 0.7
    assert all(round(p, 7) == p for p in prices)
    assert len(set(prices)) > 100


def test_split_shares_every_trade_among_the_default_symbols() -> None:
    shares = TradeSimulator(seed=1).split(1000)
    assert set(shares) == set(DEFAULT_SYMBOLS) and sum(shares.values()) == 1000
