"""The registry lists every strategy with its parameter schema and refuses bad params clearly."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from nautilus_trader.model.data import BarType

from strategies.ema_cross import EmaCross
from strategies.errors import (
    BacktestInputError,
    ParameterConflictError,
    ParameterError,
    SpecError,
    UnknownStrategyError,
)
from strategies.plugins import StrategySource
from strategies.registry import (
    ParameterSpec,
    build_strategy,
    list_strategies,
    strategy_info,
    validate_params,
)
from strategies.spec import BacktestSpec, EquityFraction, FixedQuantity

EXPECTED_PARAMETERS = {
    "bollinger_breakout": [("period", "int", 20, 2, 1000), ("k", "float", 2.0, 0.1, 10.0)],
    "donchian_breakout": [
        ("entry_period", "int", 20, 2, 1000),
        ("exit_period", "int", 10, 2, 1000),
    ],
    "donchian_long_short": [
        ("entry_period", "int", 20, 2, 1000),
        ("exit_period", "int", 10, 2, 1000),
    ],
    "ema_cross": [("fast", "int", 10, 2, 1000), ("slow", "int", 30, 2, 1000)],
    "macd_trend": [
        ("fast", "int", 12, 2, 1000),
        ("slow", "int", 26, 2, 1000),
        ("signal", "int", 9, 2, 1000),
    ],
    "rsi_reversion": [
        ("period", "int", 14, 2, 1000),
        ("oversold", "float", 30.0, 1.0, 99.0),
        ("overbought", "float", 70.0, 1.0, 99.0),
    ],
    "trend_pullback": [
        ("trend", "int", 200, 2, 5000),
        ("period", "int", 14, 2, 1000),
        ("oversold", "float", 30.0, 1.0, 99.0),
        ("overbought", "float", 70.0, 1.0, 99.0),
    ],
}


def test_lists_the_built_in_strategies_with_their_parameter_schemas() -> None:
    listed = {info.name: info for info in list_strategies()}

    assert sorted(listed) == sorted(EXPECTED_PARAMETERS)
    for name, expected in EXPECTED_PARAMETERS.items():
        info = listed[name]
        got = [(p.name, p.type, p.default, p.minimum, p.maximum) for p in info.parameters]
        assert got == expected, name
        assert all(p.description for p in info.parameters), name
        assert info.summary and "Rule:" in info.rule, name
        kind = "long/short" if name == "donchian_long_short" else "long/flat"
        assert kind in info.rule.lower(), name
        assert info.direction == kind.replace("/", "_"), name
        assert info.source == StrategySource(kind="builtin"), name


def test_schema_encodes_to_json_for_the_api() -> None:
    info = strategy_info("ema_cross")

    decoded = msgspec.json.decode(msgspec.json.encode(info.parameters), type=list[ParameterSpec])

    assert decoded[0] == ParameterSpec(
        name="fast",
        type="int",
        default=10,
        minimum=2,
        maximum=1000,
        description="Fast EMA length in bars.",
    )


def test_validate_fills_in_defaults_and_widens_ints_for_float_parameters() -> None:
    assert validate_params("rsi_reversion", {"oversold": 25}) == {
        "period": 14,
        "oversold": 25.0,
        "overbought": 70.0,
    }
    assert isinstance(validate_params("rsi_reversion", {"oversold": 25})["oversold"], float)


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(UnknownStrategyError) as caught:
        validate_params("ema_crosss", {})

    assert str(caught.value) == (
        "unknown strategy 'ema_crosss'; valid strategies: bollinger_breakout, "
        "donchian_breakout, donchian_long_short, ema_cross, macd_trend, rsi_reversion, "
        "trend_pullback"
    )
    assert isinstance(caught.value, BacktestInputError)


@pytest.mark.parametrize(
    ("strategy", "params", "message"),
    [
        (
            "ema_cross",
            {"fats": 5},
            "strategy 'ema_cross' parameter 'fats': expected one of the parameters fast, slow,"
            " got 5",
        ),
        (
            "ema_cross",
            {"fast": "5"},
            "strategy 'ema_cross' parameter 'fast': expected int, got '5'",
        ),
        (
            "ema_cross",
            {"fast": 5.0},
            "strategy 'ema_cross' parameter 'fast': expected int, got 5.0",
        ),
        (
            "ema_cross",
            {"fast": True},
            "strategy 'ema_cross' parameter 'fast': expected int, got True",
        ),
        (
            "ema_cross",
            {"slow": 1001},
            "strategy 'ema_cross' parameter 'slow': expected int in [2, 1000], got 1001",
        ),
        (
            "bollinger_breakout",
            {"k": 0.05},
            "strategy 'bollinger_breakout' parameter 'k': expected float in [0.1, 10.0], got 0.05",
        ),
        (
            "bollinger_breakout",
            {"k": float("inf")},
            "strategy 'bollinger_breakout' parameter 'k': expected finite float, got inf",
        ),
    ],
)
def test_bad_parameter_names_the_parameter_the_expectation_and_the_value(
    strategy: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        validate_params(strategy, params)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("strategy", "params", "message"),
    [
        (
            "ema_cross",
            {"fast": 30, "slow": 30},
            "strategy 'ema_cross' parameter 'fast': expected < slow (30), got 30",
        ),
        (
            "macd_trend",
            {"fast": 40},
            "strategy 'macd_trend' parameter 'fast': expected < slow (26), got 40",
        ),
        (
            "rsi_reversion",
            {"oversold": 75},
            "strategy 'rsi_reversion' parameter 'oversold': expected < overbought (70.0), got 75.0",
        ),
    ],
)
def test_forbidden_combinations_are_conflicts(
    strategy: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterConflictError) as caught:
        validate_params(strategy, params)

    assert str(caught.value) == message


def test_build_strategy_configures_the_market_sizing_and_params() -> None:
    bar_type = BarType.from_str("ETH-USDT.SIM-1-HOUR-LAST-EXTERNAL")

    strategy = build_strategy("ema_cross", {"fast": 5}, bar_type=bar_type, equity_fraction=0.5)

    assert isinstance(strategy, EmaCross)
    assert (strategy.config.fast, strategy.config.slow) == (5, 30)
    assert strategy.config.bar_type == bar_type
    assert strategy.config.instrument_id == bar_type.instrument_id
    assert (strategy.config.trade_size, strategy.config.equity_fraction) == (None, 0.5)


def test_build_strategy_needs_exactly_one_sizing() -> None:
    bar_type = BarType.from_str("ETH-USDT.SIM-1-HOUR-LAST-EXTERNAL")

    with pytest.raises(SpecError, match="exactly one of trade_size and equity_fraction"):
        build_strategy("ema_cross", {}, bar_type=bar_type)


def _spec(**changes: Any) -> BacktestSpec:
    fields: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "timeframe": "1m",
        "strategy": "x",
    }
    return BacktestSpec(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"symbol": "btc/usdt"}, "field 'symbol': expected canonical BASE-QUOTE"),
        ({"exchange": "Binance"}, "field 'exchange': expected lower case"),
        ({"timeframe": "1w"}, "field 'timeframe': expected a timeframe such as '1m'"),
        ({"currency": "USD"}, "field 'currency': expected the quote currency of BTC-USDT (USDT)"),
        ({"taker_fee": 0.2}, "field 'taker_fee': expected a number in [-0.01, 0.1], got 0.2"),
        ({"starting_balance": -5.0}, "field 'starting_balance': expected a number in"),
        ({"leverage": 3.0}, "field 'leverage': expected 1.0 on a CASH account, got 3.0"),
        ({"sizing": EquityFraction(0.0)}, "field 'sizing.fraction': expected a fraction in (0, 1]"),
        ({"sizing": FixedQuantity(-1.0)}, "field 'sizing.quantity': expected a number in"),
    ],
)
def test_spec_refuses_impossible_fields(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _spec(**changes)

    assert message in str(caught.value)


def test_spec_round_trips_through_json_and_is_checked_on_decode() -> None:
    spec = _spec(params={"fast": 5}, sizing=FixedQuantity(0.25), account_type="MARGIN")

    assert msgspec.json.decode(msgspec.json.encode(spec), type=BacktestSpec) == spec
    with pytest.raises(msgspec.ValidationError, match="field 'maker_fee'"):
        msgspec.json.decode(
            b'{"exchange":"binance","symbol":"BTC-USDT","timeframe":"1m","strategy":"x",'
            b'"maker_fee":1}',
            type=BacktestSpec,
        )
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(
            b'{"exchange":"binance","symbol":"BTC-USDT","timeframe":"1m","strategy":"x","fee":0.1}',
            type=BacktestSpec,
        )
