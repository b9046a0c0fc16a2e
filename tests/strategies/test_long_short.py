"""A long/short strategy through the real NautilusTrader engine on a MARGIN account, pinned to
numbers worked out by hand from the candles of `test_backtest`.

With both channels 2 bars, `donchian_long_short` signals on the same bars as the long/flat
Donchian breakout, but reverses instead of going flat: long at the close of bar 2, short at 4,
long at 6, short at 10, long at 12 (still held at the end). Each reversal is two fills at that
close: the old position closed, the new one opened.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from strategies.errors import InvalidRequest, SpecError
from strategies.request import BacktestRequest, base_spec
from strategies.result import BacktestResult
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec, EquityFraction
from tests.strategies.test_backtest import (
    CLOSES,
    OHLC,
    QUANTITY,
    STARTING,
    TAKER,
    _random_walk,
    candles,
    close_ts,
    donchian_spec,
)

# (bar, side of the position held from that close)
SIDES = [(2, 1), (4, -1), (6, 1), (10, -1), (12, 1)]


def long_short_spec(**changes: Any) -> BacktestSpec:
    fields: dict[str, Any] = {"strategy": "donchian_long_short", "account_type": "MARGIN"}
    return donchian_spec(**{**fields, **changes})


@pytest.fixture(scope="module")
def reversing() -> BacktestResult:
    return run_backtest(candles(OHLC), long_short_spec())


def expected_fills(sides: list[tuple[int, int]]) -> list[tuple[int, str, float, float]]:
    fills, held = [], 0
    for bar, side in sides:
        step = side - held  # in units of QUANTITY: closing the old side, then opening the new
        for _ in range(abs(step)):
            fills.append((close_ts(bar), "BUY" if step > 0 else "SELL", CLOSES[bar], QUANTITY))
        held = side
    return fills


def test_each_reversal_closes_the_position_and_opens_the_other_side_at_the_close(
    reversing: BacktestResult,
) -> None:
    got = [(f.ts, f.side, f.price, f.quantity) for f in reversing.fills]

    assert got == expected_fills(SIDES)
    assert len(got) == 9
    assert [f.fee for f in reversing.fills] == pytest.approx(
        [QUANTITY * price * TAKER for _, _, price, _ in got], rel=1e-12
    )
    # A closing fill and the next opening one belong to different positions.
    assert len({f.position_id for f in reversing.fills}) == 5


def test_short_trades_gain_when_the_price_falls_net_of_both_fees(
    reversing: BacktestResult,
) -> None:
    expected = []
    for (entry, side), (exit_, _) in itertools.pairwise(SIDES):
        fees = QUANTITY * (CLOSES[entry] + CLOSES[exit_]) * TAKER
        pnl = side * QUANTITY * (CLOSES[exit_] - CLOSES[entry]) - fees
        expected.append(("LONG" if side == 1 else "SHORT", CLOSES[entry], CLOSES[exit_], pnl))

    got = [(t.side, t.entry_price, t.exit_price, t.pnl) for t in reversing.trades]

    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], rel=1e-12)
    # Short at 98.5, covered at 104.5: 0.5 × -6 less 0.203 of fees.
    assert reversing.trades[1].pnl == pytest.approx(-3.203, rel=1e-12)
    assert reversing.trades[1].net_return == pytest.approx(-3.203 / (0.5 * 98.5), rel=1e-12)


def test_equity_marks_the_short_to_market_and_metrics_follow_from_it(
    reversing: BacktestResult,
) -> None:
    cash, held, equity, positions = STARTING, 0.0, [], []
    sides = dict(SIDES)
    for bar, close in enumerate(CLOSES):
        if bar in sides:
            target = sides[bar] * QUANTITY
            traded = target - held
            cash -= traded * close + abs(traded) * close * TAKER
            held = target
        equity.append(cash + held * close)
        positions.append(held)
    metrics = reversing.metrics

    assert reversing.equity.position == positions
    assert reversing.equity.equity == pytest.approx(equity, rel=1e-12)
    # The margin balance is realized PnL net of every fee; the open long adds 0.5 × (114 - 113.5).
    realized = sum(t.pnl for t in reversing.trades) - QUANTITY * CLOSES[12] * TAKER
    assert reversing.balances == {"USDT": pytest.approx(STARTING + realized, rel=1e-12)}
    assert metrics.final_equity == pytest.approx(STARTING + realized + 0.25, rel=1e-12)
    assert metrics.total_return == pytest.approx(equity[-1] / STARTING - 1, rel=1e-12)
    assert (metrics.trade_count, metrics.win_rate) == (4, 0.25)
    # Short positions count as exposure: held from the close of bar 2 to the end.
    assert metrics.exposure == 11 / 14


def test_a_long_leaves_to_flat_on_the_exit_channel_without_reversing() -> None:
    # Entry channel 4 bars, exit 2: short at 4, reversed long at 6, flat at 10 (107 < 108, the
    # 2-bar low, but not below 97.5, the 4-bar low), long again at 12.
    result = run_backtest(
        candles(OHLC), long_short_spec(params={"entry_period": 4, "exit_period": 2})
    )

    got = [(f.ts, f.side, f.price, f.quantity) for f in result.fills]

    assert got == expected_fills([(4, -1), (6, 1), (10, 0), (12, 1)])
    assert [t.side for t in result.trades] == ["SHORT", "LONG"]


def test_fraction_sizing_at_a_reversal_counts_the_unrealized_pnl() -> None:
    result = run_backtest(candles(OHLC), long_short_spec(sizing=EquityFraction(0.5)))

    first = result.fills[0].quantity
    assert first == int(STARTING * 0.5 / (CLOSES[2] * (1 + TAKER)) * 100) / 100
    # At bar 4 the long is still open: equity = balance + unrealized - the fee to close it.
    balance = STARTING - first * CLOSES[2] * TAKER
    equity = balance + first * (CLOSES[4] - CLOSES[2]) - first * CLOSES[4] * TAKER
    closing, opening = result.fills[1], result.fills[2]
    assert (closing.side, closing.quantity) == ("SELL", first)
    assert (opening.side, opening.quantity) == (
        "SELL", int(equity * 0.5 / (CLOSES[4] * (1 + TAKER)) * 100) / 100
    )


def test_a_long_short_strategy_is_refused_on_a_cash_account() -> None:
    with pytest.raises(SpecError, match="'account_type': expected MARGIN"):
        run_backtest(candles(OHLC), long_short_spec(account_type="CASH"))


def test_a_request_for_a_long_short_strategy_gets_a_margin_account_unless_it_asks_cash() -> None:
    def request(**changes: Any) -> BacktestRequest:
        fields: dict[str, Any] = {
            "exchange": "sim", "symbol": "BTC-USDT", "timeframe": "1m",
            "strategy": "donchian_long_short", "start_ns": 0, "end_ns": 1,
        }
        return BacktestRequest(**{**fields, **changes})

    assert base_spec(request(), timeframes=("1m",)).account_type == "MARGIN"
    assert base_spec(request(strategy="ema_cross"), timeframes=("1m",)).account_type == "CASH"
    with pytest.raises(InvalidRequest) as caught:
        base_spec(request(account_type="CASH"), timeframes=("1m",))
    assert caught.value.field == "account_type"


def test_a_long_short_run_on_a_random_walk_keeps_its_books() -> None:
    frame = _random_walk(600)

    result = run_backtest(frame, long_short_spec(
        params={"entry_period": 10, "exit_period": 5}, sizing=EquityFraction(0.9)
    ))

    sides = {t.side for t in result.trades}
    assert sides == {"LONG", "SHORT"} and result.metrics.trade_count > 6
    for trade in result.trades:
        sign = 1.0 if trade.side == "LONG" else -1.0
        gross = sign * (trade.exit_price - trade.entry_price) * trade.quantity
        assert trade.pnl == pytest.approx(gross - trade.fees, rel=1e-9, abs=1e-9)
    open_fills = [f for f in result.fills if f.position_id not in
                  {t.position_id for t in result.trades}]
    held = sum(f.quantity if f.side == "BUY" else -f.quantity for f in open_fills)
    assert result.equity.position[-1] == pytest.approx(held, abs=1e-12)
    unrealized = sum(
        (frame["close"][-1] - f.price) * (f.quantity if f.side == "BUY" else -f.quantity)
        for f in open_fills
    )
    assert result.metrics.final_equity == pytest.approx(
        result.balances["USDT"] + unrealized, rel=1e-12
    )
