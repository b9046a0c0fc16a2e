"""Run one backtest: candles and a spec in, a `BacktestResult` out.

The engine is set up as ARCHITECTURE.md ("Backtests") explains: bars stamped at their close, HEDGING
(about 1.5× faster than NETTING; a long/flat strategy holds one position at a time, so its
trades are the same), logging bypassed, no post-run analysis, the analyzer's quadratic
`record_trade` replaced by a no-op, and the garbage collector frozen during the run. Orders
fill with NautilusTrader's `BestPriceFillModel`: a market order fills whole at the price of
the moment (the close of the bar it was sent from), not spread over fake one-tick levels by the
bar's volume. Fees are the instrument's maker/taker rates, charged in the quote currency.

Call it in a worker process, not in the web server: a year of 1-minute bars takes tens of
seconds of CPU and NautilusTrader's logging is per process.
"""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import SupportsFloat

import numpy as np
import polars as pl
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import BestPriceFillModel
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, LiquiditySide, OmsType, OrderSide
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money
from nautilus_trader.trading.strategy import Strategy
from pandas.errors import Pandas4Warning

from market.arrays import Floats, Ints
from strategies import ledger
from strategies.bars import bar_type_for, candles_to_bars, check_candles
from strategies.errors import BacktestRunError, SpecError
from strategies.instrument import (
    PRICE_PRECISION_CAP,
    VENUE,
    build_instrument,
    decimals_needed,
    size_precision_cap,
)
from strategies.metrics import compute_metrics
from strategies.registry import (
    AnyStrategy,
    StrategyRegistry,
    build_strategy,
    strategy_info,
    validate_params,
)
from strategies.result import BacktestResult, Fill, Timings
from strategies.spec import BacktestSpec, EquityFraction, FixedQuantity

ProgressCallback = Callable[[float], None]

#: Bars per engine batch: progress is reported after each one. Batches cost nothing
#: measurable (the engine streams them), and 25k bars is a second or two of work.
BATCH_BARS = 25_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedMarket:
    """The bars and the instrument for one spec, built once and reusable across strategies."""

    instrument: CurrencyPair
    bar_type: BarType
    bars: list[Bar]
    bar_ts: Ints
    closes: Floats
    start_ns: int
    timeframe_ns: int
    convert_s: float


def run_backtest(
    candles: pl.DataFrame,
    spec: BacktestSpec,
    *,
    on_progress: ProgressCallback | None = None,
    analysis: bool = False,
    registry: StrategyRegistry | None = None,
) -> BacktestResult:
    """Backtest `spec` on `candles` (columns ts = bucket start in ns, open, high, low, close,
    volume; oldest first, as `CandleStore.candles_frame` returns them), its strategy looked up
    in `registry` (the built-ins by default).

    Raises `BacktestInputError` subclasses for bad input, before any engine starts; a
    long/short strategy on a CASH account is one.
    `on_progress(fraction)` is called with 0.0 first, after each batch of bars, and 1.0 last.
    `analysis=True` also fills `nautilus_statistics` from NautilusTrader's `PortfolioAnalyzer`;
    it costs quadratic time in the number of positions, so keep it for small runs.
    """
    # Params first: a typo should not wait for a year of bars to be converted.
    validate_params(spec.strategy, spec.params, registry)
    check_account(spec, registry)
    market = prepare_market(candles, spec)
    strategy = strategy_for(market, spec, registry)
    return run_prepared(market, spec, strategy, on_progress=on_progress, analysis=analysis)


def check_account(spec: BacktestSpec, registry: StrategyRegistry | None = None) -> None:
    """Refuse a long/short strategy on a CASH account, which cannot hold a short."""
    if spec.account_type == "CASH" and strategy_info(spec.strategy, registry).direction == (
        "long_short"
    ):
        expected = f"MARGIN (strategy {spec.strategy!r} sells short)"
        raise SpecError("account_type", expected, spec.account_type)


def strategy_for(
    market: PreparedMarket, spec: BacktestSpec, registry: StrategyRegistry | None = None
) -> AnyStrategy:
    """The spec's strategy with its params checked, sized per the spec, on the market's bars."""
    trade_size = None
    if isinstance(spec.sizing, FixedQuantity):
        precision = market.instrument.size_precision
        trade_size = round(Decimal(repr(spec.sizing.quantity)), precision)
        if trade_size == 0:
            expected = f"at least {Decimal(1).scaleb(-precision)} (the size precision)"
            raise SpecError("sizing.quantity", expected, spec.sizing.quantity)
    return build_strategy(
        spec.strategy,
        spec.params,
        bar_type=market.bar_type,
        trade_size=trade_size,
        equity_fraction=spec.sizing.fraction if isinstance(spec.sizing, EquityFraction) else None,
        registry=registry,
    )


def prepare_market(candles: pl.DataFrame, spec: BacktestSpec) -> PreparedMarket:
    """Check the candles and turn them into an instrument and its bars."""
    started = time.perf_counter()
    timeframe_ns = spec.timeframe_ns
    check_candles(candles, timeframe_ns)
    prices = candles.select("open", "high", "low", "close").to_numpy()
    price_precision = decimals_needed(prices.ravel(), PRICE_PRECISION_CAP)
    size_cap = size_precision_cap(spec)
    sizes = candles["volume"].to_numpy()
    if isinstance(spec.sizing, FixedQuantity):
        sizes = np.append(sizes, spec.sizing.quantity)
    size_precision = decimals_needed(sizes, size_cap)
    instrument = build_instrument(
        spec, price_precision=price_precision, size_precision=size_precision
    )
    bar_type = bar_type_for(str(instrument.id), timeframe_ns)
    bars = candles_to_bars(
        candles,
        bar_type,
        timeframe_ns=timeframe_ns,
        price_precision=price_precision,
        size_precision=size_precision,
    )
    start_ns = int(candles["ts"][0])
    return PreparedMarket(
        instrument=instrument,
        bar_type=bar_type,
        bars=bars,
        bar_ts=candles["ts"].to_numpy() + timeframe_ns,
        # The bar's close as the engine sees it: rounded to the price precision.
        closes=np.round(candles["close"].to_numpy(), price_precision),
        start_ns=start_ns,
        timeframe_ns=timeframe_ns,
        convert_s=time.perf_counter() - started,
    )


def run_prepared(
    market: PreparedMarket,
    spec: BacktestSpec,
    strategy: Strategy,
    *,
    on_progress: ProgressCallback | None = None,
    analysis: bool = False,
) -> BacktestResult:
    """Run `strategy` over prepared bars on a venue set up from `spec`."""
    report = on_progress or _ignore_progress
    report(0.0)
    started = time.perf_counter()
    engine = _build_engine(market, spec, analysis=analysis)
    try:
        engine.add_strategy(strategy)
        with warnings.catch_warnings():
            # NautilusTrader calls a pandas API deprecated in pandas 3; harmless.
            warnings.filterwarnings("ignore", category=Pandas4Warning)
            _run_in_batches(engine, market.bars, report)
        engine_s = time.perf_counter() - started
        started = time.perf_counter()
        fills = _fills(engine, market.instrument)
        balances = {
            currency.code: money.as_double()
            for currency, money in engine.portfolio.account(VENUE).balances_total().items()
        }
        statistics = _nautilus_statistics(engine, market.instrument) if analysis else None
    except Exception as error:
        where = f"backtest of {spec.strategy} on {spec.symbol}"
        raise BacktestRunError(f"{where}: the engine failed: {error}") from error
    finally:
        engine.dispose()
    result = _result(market, spec, fills, balances, statistics, engine_s, started)
    report(1.0)
    return result


def _build_engine(market: PreparedMarket, spec: BacktestSpec, *, analysis: bool) -> BacktestEngine:
    config = BacktestEngineConfig(
        logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
        run_analysis=analysis,
    )
    engine = BacktestEngine(config=config)
    # Every closed position appends to a pandas Series inside the analyzer: quadratic in the
    # trade count, and it only feeds statistics we compute ourselves.
    engine.portfolio.analyzer.record_trade = _ignore_trade
    quote = market.instrument.quote_currency
    margin = spec.account_type == "MARGIN"
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.HEDGING,
        account_type=AccountType.MARGIN if margin else AccountType.CASH,
        starting_balances=[Money(spec.starting_balance, quote)],
        # A CASH account holds the base currency it buys, so it is multi-currency; a MARGIN
        # account books PnL in the quote currency only.
        base_currency=quote if margin else None,
        default_leverage=Decimal(repr(spec.leverage)) if margin else None,
        fill_model=BestPriceFillModel(),
    )
    engine.add_instrument(market.instrument)
    return engine


def _run_in_batches(engine: BacktestEngine, bars: list[Bar], report: ProgressCallback) -> None:
    total = len(bars)
    gc.collect()
    # Objects alive now (bars, instrument, engine) are never garbage: keep the collector from
    # scanning them again and again during the run.
    gc.freeze()
    try:
        for offset in range(0, total, BATCH_BARS):
            engine.add_data(bars[offset : offset + BATCH_BARS])
            engine.run(streaming=True)
            engine.clear_data()
            done = min(offset + BATCH_BARS, total)
            if done < total:
                report(done / total)
        engine.end()
    finally:
        gc.unfreeze()


def _fills(engine: BacktestEngine, instrument: CurrencyPair) -> list[Fill]:
    quote = instrument.quote_currency
    found: list[tuple[int, int, Fill]] = []
    for position in engine.cache.positions():
        position_id = position.id.value
        for event in position.events:
            if event.commission.currency != quote:
                raise BacktestRunError(
                    f"fill {event.trade_id}: expected a fee in {quote}, got {event.commission}"
                )
            fill = Fill(
                ts=event.ts_event,
                position_id=position_id,
                side="BUY" if event.order_side == OrderSide.BUY else "SELL",
                price=event.last_px.as_double(),
                quantity=event.last_qty.as_double(),
                fee=event.commission.as_double(),
                liquidity="MAKER" if event.liquidity_side == LiquiditySide.MAKER else "TAKER",
            )
            found.append((event.ts_event, len(found), fill))
    found.sort(key=lambda item: (item[0], item[1]))
    return [fill for _, _, fill in found]


def _nautilus_statistics(
    engine: BacktestEngine, instrument: CurrencyPair
) -> dict[str, float | None]:
    stats = engine.portfolio.analyzer.get_performance_stats_pnls(instrument.quote_currency)
    return {name: _finite_or_none(value) for name, value in stats.items()}


def _result(
    market: PreparedMarket,
    spec: BacktestSpec,
    fills: list[Fill],
    balances: dict[str, float],
    statistics: dict[str, float | None] | None,
    engine_s: float,
    started: float,
) -> BacktestResult:
    size_precision = market.instrument.size_precision
    fill_frame = ledger.fills_frame(fills)
    equity = ledger.equity_frame(
        market.bar_ts,
        market.closes,
        fill_frame,
        starting_equity=spec.starting_balance,
        size_precision=size_precision,
    )
    trades = ledger.trades_frame(fill_frame, size_precision=size_precision)
    metrics = compute_metrics(
        equity,
        trades,
        fill_frame,
        starting_equity=spec.starting_balance,
        start_ns=market.start_ns,
        timeframe_ns=market.timeframe_ns,
    )
    trade_list = ledger.trades_of(trades)
    curve = ledger.equity_curve_of(equity)
    return BacktestResult(
        spec=spec,
        start_ns=market.start_ns,
        end_ns=int(market.bar_ts[-1]),
        price_precision=market.instrument.price_precision,
        size_precision=size_precision,
        metrics=metrics,
        trades=trade_list,
        fills=fills,
        equity=curve,
        balances=balances,
        nautilus_statistics=statistics,
        timings=Timings(
            convert_s=market.convert_s,
            engine_s=engine_s,
            results_s=time.perf_counter() - started,
        ),
    )


def _finite_or_none(value: SupportsFloat | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _ignore_trade(*_args: object, **_kwargs: object) -> None:
    return None


def _ignore_progress(_fraction: float) -> None:
    return None
