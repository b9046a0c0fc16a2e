"""Performance metrics of a run, from its equity curve, trades and fills (pure polars).

Definitions, with E_0 the starting equity at `start_ns` (the first bucket's start) and E_1..E_N
the equity at the N bar closes:

- periods per year P = 365 × 86 400 × 10^9 / timeframe_ns (crypto trades every day);
  the run lasts N / P years.
- per-bar returns r_i = E_i / E_{i-1} - 1, i = 1..N (so the first bar's fees count).
- total return = E_N / E_0 - 1.
- CAGR = (E_N / E_0)^(P / N) - 1; -1 when E_N <= 0; None when it overflows a float (a big
  return over a very short run).
- annual volatility = stdev(r) × √P, with the sample standard deviation (ddof = 1).
- Sharpe = mean(r) / stdev(r) × √P, risk-free rate 0.
- Sortino = mean(r) / DD × √P, downside deviation DD = √(Σ min(r_i, 0)² / N) (target 0,
  every bar in the denominator).
- max drawdown = max_i (1 - E_i / max_{j<=i} E_j), a fraction in [0, 1]; E_0 is the first peak.
- max drawdown duration = the longest time from a peak to the first close at or above it again
  (or to the last close if equity never recovers), in ns.
- Calmar = CAGR / max drawdown.
- exposure = the fraction of the N bars during which a position, long or short, was held
  (the position after the previous close's fills is not zero).
- buy and hold = last close / first close - 1: bought at the first close, the first price any
  strategy can trade at, held to the last, no fees.
- over closed trades (PnL net of fees, in the quote currency): win rate = share with PnL > 0
  (a zero-PnL trade counts as a trade, not a win); profit factor = Σ winning PnL / |Σ losing
  PnL|; expectancy = mean PnL; average win / loss = mean PnL of winners / losers (the loss is
  negative); best / worst trade = largest / smallest PnL.
- total fees = the sum of every fill's fee, the fills of a still-open position included.

Undefined values are None, never NaN or infinity: volatility, Sharpe and Sortino need N >= 2;
Sharpe needs a non-zero stdev and Sortino a non-zero downside deviation (below 1e-12 counts as
zero: such returns are rounding noise); Calmar needs a drawdown; trade statistics need trades,
average win / loss need a winner / loser, and profit factor a loser.
"""

from __future__ import annotations

import math
from typing import TypedDict

import polars as pl

from strategies.result import Metrics

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
# Per-bar return dispersion below this is float rounding, not risk.
_ZERO_DISPERSION = 1e-12


def periods_per_year(timeframe_ns: int) -> float:
    """How many bars of this width fit in a 365-day year."""
    return NS_PER_YEAR / timeframe_ns


def compute_metrics(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    *,
    starting_equity: float,
    start_ns: int,
    timeframe_ns: int,
) -> Metrics:
    """Metrics of one run. `equity` has ts, close, position and equity columns (one row per
    bar close, from `ledger.equity_frame`), `trades` a pnl column, `fills` a fee column."""
    if equity.height == 0:
        raise ValueError("metrics: expected at least one bar in the equity curve, got none")
    per_year = periods_per_year(timeframe_ns)
    n = equity.height
    curve = _curve_stats(equity, starting_equity=starting_equity, start_ns=start_ns)
    final = curve["final"]
    total_return = final / starting_equity - 1.0
    cagr = _cagr(final / starting_equity, per_year / n)
    sharpe = sortino = volatility = None
    if n >= 2:
        volatility = curve["std"] * math.sqrt(per_year)
        if curve["std"] >= _ZERO_DISPERSION:
            sharpe = curve["mean"] / curve["std"] * math.sqrt(per_year)
    if n >= 2 and curve["downside"] >= _ZERO_DISPERSION:
        sortino = curve["mean"] / curve["downside"] * math.sqrt(per_year)
    max_drawdown = curve["max_drawdown"]
    calmar = cagr / max_drawdown if cagr is not None and max_drawdown > 0.0 else None
    trade_stats = _trade_stats(trades)
    return Metrics(
        bar_count=n,
        periods_per_year=per_year,
        starting_equity=starting_equity,
        final_equity=final,
        total_return=total_return,
        cagr=cagr,
        annual_volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown=max_drawdown,
        max_drawdown_duration_ns=int(curve["max_drawdown_duration_ns"]),
        exposure=curve["exposure"],
        buy_and_hold_return=curve["last_close"] / curve["first_close"] - 1.0,
        total_fees=float(fills["fee"].sum()) if fills.height else 0.0,
        **trade_stats,
    )


def _curve_stats(
    equity: pl.DataFrame, *, starting_equity: float, start_ns: int
) -> dict[str, float]:
    start = pl.DataFrame(
        {"ts": [start_ns], "equity": [starting_equity], "position": [0.0]},
        schema={"ts": pl.Int64(), "equity": pl.Float64(), "position": pl.Float64()},
    )
    points = pl.concat([start, equity.select("ts", "equity", "position")])
    returns = (pl.col("equity") / pl.col("equity").shift(1) - 1.0).slice(1)
    peak = pl.col("equity").cum_max()
    # Each point's peak time: the last time equity stood at (or above) its running peak.
    at_peak = pl.col("equity") >= peak
    peak_ts = pl.when(at_peak).then(pl.col("ts")).forward_fill()
    # An underwater spell lasts until the next close (which recovers or is itself underwater);
    # the last close ends a spell that never recovers.
    until = pl.col("ts").shift(-1).fill_null(pl.col("ts").last())
    stats = points.select(
        final=pl.col("equity").last(),
        mean=returns.mean(),
        std=returns.std(ddof=1),
        downside=(returns.clip(upper_bound=0.0) ** 2).mean().sqrt(),
        max_drawdown=(1.0 - pl.col("equity") / peak).max().clip(lower_bound=0.0),
        max_drawdown_duration_ns=pl.when(~at_peak).then(until - peak_ts).max().fill_null(0),
        exposure=(pl.col("position").shift(1) != 0.0).slice(1).mean(),
    ).row(0, named=True)
    stats["first_close"] = equity["close"][0]
    stats["last_close"] = equity["close"][-1]
    return {key: (0.0 if value is None else value) for key, value in stats.items()}


def _cagr(growth: float, years_inverse: float) -> float | None:
    if growth <= 0.0:
        return -1.0
    try:
        value = growth**years_inverse - 1.0
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


class _TradeStats(TypedDict):
    trade_count: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    average_win: float | None
    average_loss: float | None
    best_trade: float | None
    worst_trade: float | None


def _trade_stats(trades: pl.DataFrame) -> _TradeStats:
    if trades.height == 0:
        return {
            "trade_count": 0,
            "win_rate": None,
            "profit_factor": None,
            "expectancy": None,
            "average_win": None,
            "average_loss": None,
            "best_trade": None,
            "worst_trade": None,
        }
    pnl = pl.col("pnl")
    stats = trades.select(
        trade_count=pl.len(),
        wins=(pnl > 0.0).sum(),
        gross_win=pnl.filter(pnl > 0.0).sum(),
        gross_loss=pnl.filter(pnl < 0.0).sum(),
        losses=(pnl < 0.0).sum(),
        expectancy=pnl.mean(),
        average_win=pnl.filter(pnl > 0.0).mean(),
        average_loss=pnl.filter(pnl < 0.0).mean(),
        best_trade=pnl.max(),
        worst_trade=pnl.min(),
    ).row(0, named=True)
    return {
        "trade_count": stats["trade_count"],
        "win_rate": stats["wins"] / stats["trade_count"],
        "profit_factor": stats["gross_win"] / -stats["gross_loss"] if stats["losses"] else None,
        "expectancy": stats["expectancy"],
        "average_win": stats["average_win"],
        "average_loss": stats["average_loss"],
        "best_trade": stats["best_trade"],
        "worst_trade": stats["worst_trade"],
    }
