"""Our metrics against NautilusTrader's `PortfolioAnalyzer` on a small run (run_analysis=True).

Daily bars, so NautilusTrader's return statistics (which work on daily returns) see the same
series as ours. The walk ends in a steady fall, so the EMA cross is flat at the end and every
position the analyzer counts is one of our closed trades.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from nautilus_trader.analysis import (
    CAGR,
    CalmarRatio,
    MaxDrawdown,
    ProfitFactor,
    ReturnsVolatility,
    SharpeRatio,
    SortinoRatio,
)

from strategies.result import BacktestResult
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec, FixedQuantity

DAY = 86_400_000_000_000
START = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z


def daily_walk(count: int, fall: int) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    steps = np.concatenate([rng.normal(0.0, 0.03, count), np.full(fall, -0.02)])
    closes = np.round(100.0 * np.exp(np.cumsum(steps)), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    return pl.DataFrame(
        {
            "ts": [START + i * DAY for i in range(count + fall)],
            "open": opens,
            "high": np.round(np.maximum(opens, closes) * 1.01, 2),
            "low": np.round(np.minimum(opens, closes) * 0.99, 2),
            "close": closes,
            "volume": np.full(count + fall, 100.0),
        }
    )


@pytest.fixture(scope="module")
def analysed() -> BacktestResult:
    spec = BacktestSpec(
        exchange="test",
        symbol="ETH-USDT",
        timeframe="1d",
        strategy="ema_cross",
        params={"fast": 3, "slow": 8},
        taker_fee=0.001,
        sizing=FixedQuantity(10.0),
    )
    return run_backtest(daily_walk(300, 20), spec, analysis=True)


def test_the_run_ends_flat_with_enough_trades_to_compare(analysed: BacktestResult) -> None:
    assert analysed.equity.position[-1] == 0.0
    assert analysed.metrics.trade_count >= 10
    assert analysed.metrics.average_loss is not None and analysed.metrics.average_win is not None


def test_trade_statistics_match_the_portfolio_analyzer(analysed: BacktestResult) -> None:
    theirs = analysed.nautilus_statistics
    ours = analysed.metrics
    assert theirs is not None

    assert ours.win_rate == pytest.approx(theirs["Win Rate"], rel=1e-12)
    # Their expectancy leaves zero-PnL trades out; with fees on every fill there are none.
    assert ours.expectancy == pytest.approx(theirs["Expectancy"], rel=1e-9)
    assert ours.average_win == pytest.approx(theirs["Avg Winner"], rel=1e-9)
    assert ours.average_loss == pytest.approx(theirs["Avg Loser"], rel=1e-9)
    assert ours.best_trade == pytest.approx(theirs["Max Winner"], rel=1e-9)
    assert ours.worst_trade == pytest.approx(theirs["Max Loser"], rel=1e-9)
    assert ours.total_fees > 0.0


def test_profit_factor_matches_nautilus_on_the_same_pnls(analysed: BacktestResult) -> None:
    pnls = {trade.exit_ts: trade.pnl for trade in analysed.trades}

    assert analysed.metrics.profit_factor == pytest.approx(
        ProfitFactor().calculate_from_returns(pnls), rel=1e-9
    )


def test_return_statistics_match_nautilus_on_our_daily_returns(analysed: BacktestResult) -> None:
    equity = [analysed.metrics.starting_equity, *analysed.equity.equity]
    returns = {ts: equity[i + 1] / equity[i] - 1.0 for i, ts in enumerate(analysed.equity.ts)}
    ours = analysed.metrics

    assert ours.sharpe == pytest.approx(SharpeRatio(365).calculate_from_returns(returns))
    assert ours.sortino == pytest.approx(SortinoRatio(365).calculate_from_returns(returns))
    assert ours.annual_volatility == pytest.approx(
        ReturnsVolatility(365).calculate_from_returns(returns)
    )
    assert ours.cagr == pytest.approx(CAGR(365).calculate_from_returns(returns))
    drawdown = _number(MaxDrawdown().calculate_from_returns(returns))
    assert ours.max_drawdown == pytest.approx(-drawdown)
    assert ours.calmar == pytest.approx(CalmarRatio(365).calculate_from_returns(returns))


def _number(value: float | None) -> float:
    assert value is not None
    return value
