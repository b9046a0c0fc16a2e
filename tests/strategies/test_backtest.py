"""Backtests through the real NautilusTrader engine, pinned to numbers worked out by hand.

The hand-made candles below drive a Donchian breakout (both channels 2 bars) through a known
sequence: buy at the close of bar 2, sell at 4, buy at 6, sell at 10, buy at 12 and still hold
at the end (bar 13). Every expected figure is computed in the test from those closes, the
quantity and the fee rate.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.trading.strategy import Strategy

from strategies import runner
from strategies.errors import CandleDataError, ParameterError, SpecError, UnknownStrategyError
from strategies.result import BacktestResult
from strategies.runner import prepare_market, run_backtest, run_prepared
from strategies.spec import BacktestSpec, EquityFraction, FixedQuantity

MINUTE = 60_000_000_000
START = 1_700_000_040_000_000_000 // MINUTE * MINUTE
# (open, high, low, close); open is the previous close, as real candles are.
OHLC = [
    (100.0, 101.0, 99.0, 100.0),
    (100.0, 101.0, 99.0, 100.5),
    (100.5, 103.0, 100.0, 102.5),  # close > max(high of bars 0-1) = 101: buy
    (102.5, 104.0, 102.0, 103.5),
    (103.5, 104.0, 98.0, 98.5),  # close < min(low of bars 2-3) = 100: sell
    (98.5, 99.0, 97.0, 97.5),
    (97.5, 105.0, 97.5, 104.5),  # close > max(high of bars 4-5) = 104: buy
    (104.5, 110.0, 104.5, 109.0),
    (109.0, 112.0, 108.0, 111.0),
    (111.0, 113.0, 110.0, 112.0),
    (112.0, 112.0, 106.0, 107.0),  # close < min(low of bars 8-9) = 108: sell
    (107.0, 108.0, 106.5, 107.5),
    (107.5, 114.0, 107.0, 113.5),  # close > max(high of bars 10-11) = 112: buy
    (113.5, 115.0, 113.0, 114.0),  # still long at the end
]
CLOSES = [bar[3] for bar in OHLC]
QUANTITY = 0.5
TAKER = 0.002
STARTING = 10_000.0
SIGNALS = [(2, "BUY"), (4, "SELL"), (6, "BUY"), (10, "SELL"), (12, "BUY")]


def candles(ohlc: list[tuple[float, float, float, float]], *, step: int = MINUTE) -> pl.DataFrame:
    count = len(ohlc)
    return pl.DataFrame(
        {
            "ts": [START + i * step for i in range(count)],
            "open": [bar[0] for bar in ohlc],
            "high": [bar[1] for bar in ohlc],
            "low": [bar[2] for bar in ohlc],
            "close": [bar[3] for bar in ohlc],
            "volume": [1.25] * count,
            "trades": [3] * count,
            "vwap": [bar[3] for bar in ohlc],
        }
    )


def donchian_spec(**changes: Any) -> BacktestSpec:
    fields: dict[str, Any] = {
        "exchange": "test",
        "symbol": "BTC-USDT",
        "timeframe": "1m",
        "strategy": "donchian_breakout",
        "params": {"entry_period": 2, "exit_period": 2},
        "starting_balance": STARTING,
        "maker_fee": 0.001,
        "taker_fee": TAKER,
        "sizing": FixedQuantity(QUANTITY),
    }
    return BacktestSpec(**{**fields, **changes})


def close_ts(bar: int) -> int:
    return START + (bar + 1) * MINUTE


@pytest.fixture(scope="module")
def donchian() -> BacktestResult:
    return run_backtest(candles(OHLC), donchian_spec())


def test_fills_happen_at_the_signal_bars_close_with_the_taker_fee(donchian: BacktestResult) -> None:
    expected = [
        (close_ts(bar), side, CLOSES[bar], QUANTITY, QUANTITY * CLOSES[bar] * TAKER)
        for bar, side in SIGNALS
    ]

    got = [(f.ts, f.side, f.price, f.quantity, f.fee) for f in donchian.fills]

    assert [g[:4] for g in got] == [e[:4] for e in expected]
    assert [g[4] for g in got] == pytest.approx([e[4] for e in expected], rel=1e-12, abs=1e-12)
    assert {f.liquidity for f in donchian.fills} == {"TAKER"}


def test_final_balances_follow_from_prices_and_fees(donchian: BacktestResult) -> None:
    cash = STARTING
    for bar, side in SIGNALS:
        notional = QUANTITY * CLOSES[bar]
        cash += (-notional if side == "BUY" else notional) - notional * TAKER

    assert donchian.balances["USDT"] == pytest.approx(cash, abs=1e-8)
    assert cash == pytest.approx(9941.974, abs=1e-9)
    assert donchian.balances["BTC"] == QUANTITY


def test_trades_are_the_closed_round_trips_net_of_both_fees(donchian: BacktestResult) -> None:
    expected = []
    for entry, exit_ in [(2, 4), (6, 10)]:
        fees = QUANTITY * (CLOSES[entry] + CLOSES[exit_]) * TAKER
        pnl = QUANTITY * (CLOSES[exit_] - CLOSES[entry]) - fees
        expected.append((close_ts(entry), close_ts(exit_), CLOSES[entry], CLOSES[exit_], fees, pnl))

    got = [
        (t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.fees, t.pnl) for t in donchian.trades
    ]

    assert [g[:4] for g in got] == [e[:4] for e in expected]
    assert [g[4:] for g in got] == [pytest.approx(e[4:], rel=1e-12) for e in expected]
    assert [t.side for t in donchian.trades] == ["LONG", "LONG"]
    assert [t.pnl for t in donchian.trades] == pytest.approx([-2.201, 1.0385], rel=1e-12)
    assert donchian.trades[0].net_return == pytest.approx(-2.201 / (0.5 * 102.5), rel=1e-12)


def test_equity_is_cash_plus_position_at_every_close(donchian: BacktestResult) -> None:
    cash, held, expected_equity, expected_position = STARTING, 0.0, [], []
    signals = dict(SIGNALS)
    for bar, close in enumerate(CLOSES):
        if bar in signals:
            sign = 1.0 if signals[bar] == "BUY" else -1.0
            cash -= sign * QUANTITY * close + QUANTITY * close * TAKER
            held += sign * QUANTITY
        expected_equity.append(cash + held * close)
        expected_position.append(held)

    assert donchian.equity.ts == [close_ts(bar) for bar in range(len(OHLC))]
    assert donchian.equity.position == expected_position
    assert donchian.equity.equity == pytest.approx(expected_equity, rel=1e-12)
    assert donchian.metrics.final_equity == pytest.approx(9941.974 + 0.5 * 114.0, rel=1e-12)


def test_metrics_of_the_hand_made_run(donchian: BacktestResult) -> None:
    metrics = donchian.metrics

    assert metrics.bar_count == 14
    assert metrics.trade_count == 2
    assert metrics.total_return == pytest.approx((9941.974 + 57.0) / STARTING - 1, rel=1e-9)
    assert metrics.total_fees == pytest.approx(0.526, rel=1e-12)
    # Held over bars 3-4, 7-10 and 13.
    assert metrics.exposure == 7 / 14
    assert metrics.buy_and_hold_return == pytest.approx(114.0 / 100.0 - 1, rel=1e-12)
    assert metrics.win_rate == 0.5
    assert metrics.profit_factor == pytest.approx(1.0385 / 2.201, rel=1e-12)
    assert metrics.best_trade == pytest.approx(1.0385, rel=1e-12)
    assert metrics.worst_trade == pytest.approx(-2.201, rel=1e-12)
    assert (donchian.start_ns, donchian.end_ns) == (START, close_ts(13))
    assert (donchian.price_precision, donchian.size_precision) == (1, 2)


def test_a_rerun_gives_an_identical_result(donchian: BacktestResult) -> None:
    again = run_backtest(candles(OHLC), donchian_spec())

    assert _without_timings(again) == _without_timings(donchian)


def test_a_result_round_trips_through_json_for_storage(donchian: BacktestResult) -> None:
    encoded = msgspec.json.encode(donchian)

    assert msgspec.json.decode(encoded, type=BacktestResult) == donchian


def test_batched_runs_report_progress_and_change_nothing(
    donchian: BacktestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "BATCH_BARS", 5)
    progress: list[float] = []

    batched = run_backtest(candles(OHLC), donchian_spec(), on_progress=progress.append)

    assert progress == [0.0, 5 / 14, 10 / 14, 1.0]
    assert _without_timings(batched) == _without_timings(donchian)


def test_a_margin_account_books_the_same_trades_and_equity(donchian: BacktestResult) -> None:
    margin = run_backtest(candles(OHLC), donchian_spec(account_type="MARGIN"))

    assert margin.fills == donchian.fills
    assert margin.trades == donchian.trades
    assert margin.equity.equity == pytest.approx(donchian.equity.equity, rel=1e-12)
    # A margin balance holds realized PnL net of fees; the open position's entry fee included.
    assert margin.balances == {"USDT": pytest.approx(STARTING - 2.201 + 1.0385 - 0.1135)}


def test_fraction_sizing_commits_that_share_of_equity_fee_included() -> None:
    result = run_backtest(candles(OHLC), donchian_spec(sizing=EquityFraction(0.5)))

    first = result.fills[0]
    # Rounded down to the size precision (2 decimals) so the cash always covers it.
    expected = int(STARTING * 0.5 / (CLOSES[2] * (1 + TAKER)) * 100) / 100
    assert (first.ts, first.price, first.quantity) == (close_ts(2), CLOSES[2], expected)
    cash_after_first_round_trip = STARTING + result.trades[0].pnl
    second = result.fills[2]
    assert (
        second.quantity
        == int(cash_after_first_round_trip * 0.5 / (CLOSES[6] * (1 + TAKER)) * 100) / 100
    )


def test_an_entry_the_cash_account_cannot_pay_for_is_skipped() -> None:
    # 0.5 BTC at 102.5 costs 51.3525 with the fee; after selling at 98.5, 52 USDT has become
    # 49.799, short of the 52.3545 the second entry at 104.5 needs.
    result = run_backtest(candles(OHLC), donchian_spec(starting_balance=52.0))

    assert [(f.side, f.ts) for f in result.fills] == [("BUY", close_ts(2)), ("SELL", close_ts(4))]
    assert result.metrics.trade_count == 1


class RecorderConfig(StrategyConfig, frozen=True, kw_only=True):
    bar_type: BarType
    buy_on_bar: int


class Recorder(Strategy):
    """Records what it sees and when; buys once, on the bar numbered `buy_on_bar`."""

    def __init__(self, config: RecorderConfig) -> None:
        super().__init__(config)
        self.seen: list[tuple[int, int, float]] = []
        self.filled: list[tuple[int, int, float]] = []

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.seen.append((self.clock.timestamp_ns(), bar.ts_event, bar.close.as_double()))
        if len(self.seen) == self.config.buy_on_bar + 1:
            instrument = self.cache.instrument(self.config.bar_type.instrument_id)
            order = self.order_factory.market(
                instrument.id, OrderSide.BUY, instrument.make_qty(QUANTITY)
            )
            self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        self.filled.append((self.clock.timestamp_ns(), event.ts_event, event.last_px.as_double()))


def test_no_bar_is_seen_before_its_bucket_ends_and_orders_fill_at_its_close() -> None:
    spec = donchian_spec()
    market = prepare_market(candles(OHLC), spec)
    recorder = Recorder(RecorderConfig(bar_type=market.bar_type, buy_on_bar=6))

    run_prepared(market, spec, recorder)

    assert len(recorder.seen) == len(OHLC)
    for bar, (clock_ns, bar_ts, close) in enumerate(recorder.seen):
        bucket_end = START + (bar + 1) * MINUTE
        assert clock_ns >= bucket_end
        assert bar_ts == bucket_end
        assert close == CLOSES[bar]
    # Bar 6 runs 97.5 -> 105 -> 97.5 -> 104.5: any earlier price would show as a different fill.
    assert recorder.filled == [(close_ts(6), close_ts(6), CLOSES[6])]


def test_every_strategy_runs_and_its_books_balance() -> None:
    frame = _random_walk(600)
    for strategy, params in [
        ("ema_cross", {"fast": 5, "slow": 20}),
        ("rsi_reversion", {"period": 7, "oversold": 40.0, "overbought": 60.0}),
        ("bollinger_breakout", {"period": 10, "k": 1.0}),
        ("macd_trend", {"fast": 5, "slow": 13, "signal": 4}),
        ("donchian_breakout", {"entry_period": 10, "exit_period": 5}),
        ("trend_pullback", {"trend": 100, "period": 3, "oversold": 45.0, "overbought": 55.0}),
    ]:
        spec = donchian_spec(strategy=strategy, params=params, sizing=EquityFraction(0.9))

        result = run_backtest(frame, spec)

        assert result.metrics.trade_count > 3, strategy
        last_close = frame["close"][-1]
        books = result.balances["USDT"] + result.balances.get("BTC", 0.0) * last_close
        assert result.metrics.final_equity == pytest.approx(books, rel=1e-12), strategy
        assert result.equity.position[-1] == result.balances.get("BTC", 0.0), strategy
        assert sum(f.fee for f in result.fills) == pytest.approx(result.metrics.total_fees)
        for trade in result.trades:
            gross = (trade.exit_price - trade.entry_price) * trade.quantity
            assert trade.pnl == pytest.approx(gross - trade.fees, rel=1e-9, abs=1e-9), strategy


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (candles(OHLC).head(0), "expected at least one candle"),
        (candles(OHLC).reverse(), "ts strictly increasing"),
        (candles(OHLC).with_columns(pl.col("ts") + 1), "ts on bucket starts"),
        (candles(OHLC).with_columns(low=pl.col("high") + 1), "low <= open, close <= high"),
        (candles(OHLC).with_columns(close=pl.lit(0.0)), "finite prices > 0"),
        (candles(OHLC).drop("volume"), "missing ['volume']"),
    ],
)
def test_bad_candles_are_refused_before_the_engine_starts(
    frame: pl.DataFrame, message: str
) -> None:
    with pytest.raises(CandleDataError, match=re.escape(message)):
        run_backtest(frame, donchian_spec())


def test_bad_strategy_input_is_refused_before_the_engine_starts() -> None:
    with pytest.raises(UnknownStrategyError):
        run_backtest(candles(OHLC), donchian_spec(strategy="nope"))
    with pytest.raises(ParameterError, match="'exit_period': expected int in"):
        run_backtest(candles(OHLC), donchian_spec(params={"exit_period": 0}))


def test_a_fixed_quantity_finer_than_the_base_currency_allows_is_refused() -> None:
    # USD balances hold cents, so sizes of USD-JPY have at most 2 decimals.
    spec = donchian_spec(symbol="USD-JPY", sizing=FixedQuantity(0.001))

    with pytest.raises(SpecError, match=r"'sizing\.quantity': expected at least 0\.01"):
        run_backtest(candles(OHLC), spec)


def _random_walk(count: int) -> pl.DataFrame:
    rng = np.random.default_rng(11)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, count))), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    highs = np.maximum(opens, closes) + 0.05
    lows = np.minimum(opens, closes) - 0.05
    return pl.DataFrame(
        {
            "ts": [START + i * MINUTE for i in range(count)],
            "open": opens,
            "high": np.round(highs, 2),
            "low": np.round(lows, 2),
            "close": closes,
            "volume": np.full(count, 2.0),
        }
    )


def _without_timings(result: BacktestResult) -> bytes:
    return msgspec.json.encode(msgspec.structs.replace(result, timings=None))
