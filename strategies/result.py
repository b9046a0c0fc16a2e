"""What a backtest returns: frozen msgspec Structs, ready to store as JSON and to serve.

Money amounts (prices, fees, PnL, equity) are in the spec's quote currency; quantities in the
base currency; timestamps in integer nanoseconds since the epoch, UTC. The equity curve is
columnar (three parallel lists) because it holds one point per bar.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from strategies.spec import BacktestSpec


class Fill(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One execution. `fee` is what the venue charged for it."""

    ts: int
    position_id: str
    side: Literal["BUY", "SELL"]
    price: float
    quantity: float
    fee: float
    liquidity: Literal["MAKER", "TAKER"]


class Trade(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A closed position, computed from its fills.

    `pnl` is net of `fees` (both legs); `net_return` is `pnl` over the entry notional
    (`entry_price * quantity`). Prices are the quantity-weighted averages of each side's fills.
    """

    position_id: str
    side: Literal["LONG", "SHORT"]
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    fees: float
    net_return: float


class EquityCurve(msgspec.Struct, frozen=True, kw_only=True):
    """Equity marked to market at every bar close: cash + position × close.

    `position` is the base quantity held after that close's fills.
    """

    ts: list[int]
    equity: list[float]
    position: list[float]


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """Performance statistics; `strategies.metrics` documents each definition.

    A statistic that is undefined for the run (no trades, no losing trade, zero volatility,
    fewer than two bars) is None, never NaN or infinity.
    """

    bar_count: int
    periods_per_year: float
    starting_equity: float
    final_equity: float
    total_return: float
    cagr: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_duration_ns: int
    exposure: float
    buy_and_hold_return: float
    trade_count: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    average_win: float | None
    average_loss: float | None
    best_trade: float | None
    worst_trade: float | None
    total_fees: float


class Timings(msgspec.Struct, frozen=True, kw_only=True):
    """Wall-clock seconds spent in each stage; the only part of a result that varies by run."""

    convert_s: float
    engine_s: float
    results_s: float


class BacktestResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one backtest produced.

    `balances` are the venue account's final balances per currency (a CASH account holds the
    base currency while long). A position still open at the end is marked to market in the
    equity curve and the metrics but is not a trade. `nautilus_statistics` holds
    NautilusTrader's own `PortfolioAnalyzer` figures when the run asked for them (small runs
    only: they cost quadratic time in the number of positions).
    """

    spec: BacktestSpec
    start_ns: int
    end_ns: int
    price_precision: int
    size_precision: int
    metrics: Metrics
    trades: list[Trade]
    fills: list[Fill]
    equity: EquityCurve
    balances: dict[str, float]
    timings: Timings
    nautilus_statistics: dict[str, float | None] | None = None
