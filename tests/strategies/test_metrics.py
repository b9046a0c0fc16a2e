"""Metrics on hand-made equity curves and trades, against numbers worked out in plain Python
and against NautilusTrader's own statistics where both define the same figure."""

from __future__ import annotations

import math
import statistics

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

from strategies.metrics import compute_metrics, periods_per_year

DAY = 86_400_000_000_000
START = 1_700_006_400_000_000_000  # a midnight UTC, so daily buckets line up
STARTING = 1000.0
# Six daily closes: up, a drawdown from 1010 that recovers at the 4th close, a second dip.
EQUITY = [1010.0, 990.0, 1000.0, 1020.0, 1005.0, 1040.0]
# Base quantity held after each close: bought at close 1, sold at 3, bought at 4, sold at 6.
POSITION = [1.0, 1.0, 0.0, 2.0, 2.0, 0.0]
CLOSES = [100.0, 98.0, 99.0, 102.0, 101.0, 104.0]
PNLS = [12.5, -4.0, 0.0, 7.5, -1.5]
FEES = [0.5, 0.25, 0.25]


def _equity(values: list[float], positions: list[float], closes: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [START + (i + 1) * DAY for i in range(len(values))],
            "close": closes,
            "position": positions,
            "equity": values,
        }
    )


def _trades(pnls: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"pnl": pnls}, schema={"pnl": pl.Float64()})


def _fills(fees: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"fee": fees}, schema={"fee": pl.Float64()})


def _metrics(
    values: list[float] = EQUITY,
    positions: list[float] = POSITION,
    closes: list[float] = CLOSES,
    pnls: list[float] = PNLS,
    fees: list[float] = FEES,
    *,
    starting: float = STARTING,
    timeframe_ns: int = DAY,
):
    return compute_metrics(
        _equity(values, positions, closes),
        _trades(pnls),
        _fills(fees),
        starting_equity=starting,
        start_ns=START,
        timeframe_ns=timeframe_ns,
    )


def _returns() -> list[float]:
    points = [STARTING, *EQUITY]
    return [points[i] / points[i - 1] - 1.0 for i in range(1, len(points))]


def test_curve_metrics_match_a_hand_calculation() -> None:
    returns = _returns()
    mean = sum(returns) / 6
    stdev = statistics.stdev(returns)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / 6)
    cagr = 1.04 ** (365 / 6) - 1.0

    metrics = _metrics()

    assert metrics.bar_count == 6
    assert metrics.periods_per_year == 365.0
    assert metrics.final_equity == 1040.0
    assert metrics.total_return == pytest.approx(0.04, rel=1e-12)
    assert metrics.cagr == pytest.approx(cagr, rel=1e-12)
    assert metrics.annual_volatility == pytest.approx(stdev * math.sqrt(365), rel=1e-12)
    assert metrics.sharpe == pytest.approx(mean / stdev * math.sqrt(365), rel=1e-12)
    assert metrics.sortino == pytest.approx(mean / downside * math.sqrt(365), rel=1e-12)
    # Deepest fall: from the 1010 peak to 990.
    assert metrics.max_drawdown == pytest.approx(20 / 1010, rel=1e-12)
    assert metrics.calmar == pytest.approx(cagr / (20 / 1010), rel=1e-12)
    # Peak at close 1, back at (above) it at close 4: three days under water.
    assert metrics.max_drawdown_duration_ns == 3 * DAY
    # Held during bars 2, 3 (bought at close 1) and 5, 6 (bought at close 4).
    assert metrics.exposure == pytest.approx(4 / 6, rel=1e-12)
    assert metrics.buy_and_hold_return == pytest.approx(104 / 100 - 1, rel=1e-12)
    assert metrics.total_fees == 1.0


def test_trade_metrics_match_a_hand_calculation() -> None:
    metrics = _metrics()

    assert metrics.trade_count == 5
    assert metrics.win_rate == 2 / 5  # the zero-PnL trade is a trade, not a win
    assert metrics.profit_factor == pytest.approx(20.0 / 5.5, rel=1e-12)
    assert metrics.expectancy == pytest.approx(14.5 / 5, rel=1e-12)
    assert metrics.average_win == 10.0
    assert metrics.average_loss == -2.75
    assert metrics.best_trade == 12.5
    assert metrics.worst_trade == -4.0


def test_curve_metrics_agree_with_nautilus_statistics_on_daily_returns() -> None:
    # NautilusTrader's return statistics work on daily returns, so daily bars compare 1:1.
    returns = {START + (i + 1) * DAY: r for i, r in enumerate(_returns())}

    metrics = _metrics()

    assert metrics.sharpe == pytest.approx(SharpeRatio(365).calculate_from_returns(returns))
    assert metrics.sortino == pytest.approx(SortinoRatio(365).calculate_from_returns(returns))
    assert metrics.annual_volatility == pytest.approx(
        ReturnsVolatility(365).calculate_from_returns(returns)
    )
    assert metrics.cagr == pytest.approx(CAGR(365).calculate_from_returns(returns))
    drawdown = _number(MaxDrawdown().calculate_from_returns(returns))
    assert metrics.max_drawdown == pytest.approx(-drawdown)
    assert metrics.calmar == pytest.approx(CalmarRatio(365).calculate_from_returns(returns))
    # Its profit factor is the same ratio of sums, over whatever series it is given.
    pnls = {START + i * DAY: pnl for i, pnl in enumerate(PNLS)}
    assert metrics.profit_factor == pytest.approx(ProfitFactor().calculate_from_returns(pnls))


def test_periods_per_year_follows_the_bar_width() -> None:
    assert periods_per_year(60_000_000_000) == 525_600.0
    assert periods_per_year(3_600_000_000_000) == 8_760.0


def test_no_trades_and_a_flat_curve_give_none_not_nan() -> None:
    metrics = _metrics([1000.0] * 4, [0.0] * 4, [10.0] * 4, [], [])

    assert metrics.total_return == 0.0
    assert metrics.cagr == 0.0
    assert metrics.annual_volatility == 0.0
    assert metrics.sharpe is None
    assert metrics.sortino is None
    assert metrics.max_drawdown == 0.0
    assert metrics.max_drawdown_duration_ns == 0
    assert metrics.calmar is None
    assert metrics.exposure == 0.0
    assert metrics.total_fees == 0.0
    assert metrics.trade_count == 0
    assert (metrics.win_rate, metrics.profit_factor, metrics.expectancy) == (None, None, None)
    assert (metrics.average_win, metrics.average_loss) == (None, None)
    assert (metrics.best_trade, metrics.worst_trade) == (None, None)


def test_only_winners_leave_profit_factor_and_average_loss_undefined() -> None:
    metrics = _metrics(pnls=[1.0, 2.0])

    assert metrics.win_rate == 1.0
    assert metrics.profit_factor is None
    assert metrics.average_loss is None
    assert metrics.average_win == 1.5


def test_one_bar_has_no_volatility_and_a_curve_never_recovering_lasts_to_the_end() -> None:
    single = _metrics([990.0], [0.0], [10.0], [], [])
    falling = _metrics([990.0, 980.0, 985.0], [0.0] * 3, [1.0] * 3, [], [])

    assert single.annual_volatility is None and single.sharpe is None and single.sortino is None
    assert single.max_drawdown_duration_ns == DAY
    assert falling.max_drawdown == pytest.approx(0.02, rel=1e-12)
    assert falling.max_drawdown_duration_ns == 3 * DAY
    assert falling.sortino is not None and falling.sortino < 0


def test_ruin_and_overflowing_growth_keep_cagr_finite_or_none() -> None:
    ruined = _metrics([500.0, 0.0], [0.0, 0.0], [1.0, 1.0], [], [])
    # Doubling every minute for ten minutes annualizes to more than a float holds.
    rocket = _metrics(
        [1000.0 * 2**i for i in range(1, 11)],
        [0.0] * 10,
        [1.0] * 10,
        [],
        [],
        timeframe_ns=60_000_000_000,
    )

    assert ruined.cagr == -1.0
    assert ruined.max_drawdown == 1.0
    assert rocket.cagr is None
    assert rocket.calmar is None


def _number(value: float | None) -> float:
    assert value is not None
    return value
