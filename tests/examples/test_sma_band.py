"""The example user strategy (`examples/strategies/sma_band.py`), loaded from its directory as
CANDLEGRAPH_STRATEGY_PATH would load it, and run through the real backtest path on hand-made
candles."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from strategies.errors import ParameterConflictError
from strategies.plugins import StrategySource
from strategies.registry import StrategyRegistry, load_registry, validate_params
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec, FixedQuantity

EXAMPLES = Path(__file__).parents[2] / "examples" / "strategies"
MINUTE = 60_000_000_000
START = 1_700_000_040_000_000_000 // MINUTE * MINUTE
CLOSES = [100.0, 100.0, 100.0, 104.0, 106.0, 105.0, 100.0, 98.0, 99.0, 103.0, 104.0]
PARAMS = {"period": 3, "enter_above": 0.01, "exit_below": 0.0}
QUANTITY = 2.0
TAKER = 0.001


@pytest.fixture(scope="module")
def registry() -> StrategyRegistry:
    return load_registry([EXAMPLES], entry_points=())


def candles(closes: list[float]) -> pl.DataFrame:
    opens = [closes[0], *closes[:-1]]
    return pl.DataFrame({
        "ts": [START + i * MINUTE for i in range(len(closes))],
        "open": opens,
        "high": [max(o, c) + 0.5 for o, c in zip(opens, closes, strict=True)],
        "low": [min(o, c) - 0.5 for o, c in zip(opens, closes, strict=True)],
        "close": closes,
        "volume": [1.0] * len(closes),
    })


def reference_signals(closes: list[float], period: int, above: float, below: float
                      ) -> list[tuple[int, str]]:
    """The rule of the docstring, in plain Python."""
    signals, long = [], False
    for bar in range(period - 1, len(closes)):
        average = sum(closes[bar - period + 1 : bar + 1]) / period
        if not long and closes[bar] > average * (1 + above):
            signals.append((bar, "BUY"))
            long = True
        elif long and closes[bar] < average * (1 - below):
            signals.append((bar, "SELL"))
            long = False
    return signals


def test_the_example_is_listed_with_its_file_and_parameter_schema(
    registry: StrategyRegistry,
) -> None:
    [info] = [info for info in registry.strategies() if info.name == "sma_band"]

    assert registry.problems == ()
    assert info.source == StrategySource(kind="path", file=str(EXAMPLES / "sma_band.py"))
    assert info.summary.startswith("SMA band: long while the close holds above")
    assert [(p.name, p.type, p.default, p.minimum, p.maximum) for p in info.parameters] == [
        ("period", "int", 20, 2, 500),
        ("enter_above", "float", 0.01, 0.0, 0.2),
        ("exit_below", "float", 0.0, 0.0, 0.2),
    ]
    with pytest.raises(ParameterConflictError, match="'enter_above': expected > 0"):
        validate_params("sma_band", {"enter_above": 0.0}, registry)


def test_the_example_trades_its_rule_at_the_signal_closes(registry: StrategyRegistry) -> None:
    spec = BacktestSpec(
        exchange="test", symbol="BTC-USDT", timeframe="1m", strategy="sma_band", params=PARAMS,
        taker_fee=TAKER, sizing=FixedQuantity(QUANTITY),
    )

    result = run_backtest(candles(CLOSES), spec, registry=registry)

    signals = reference_signals(CLOSES, 3, 0.01, 0.0)
    assert signals == [(3, "BUY"), (6, "SELL"), (9, "BUY")]
    assert [(f.ts, f.side, f.price, f.quantity) for f in result.fills] == [
        (START + (bar + 1) * MINUTE, side, CLOSES[bar], QUANTITY) for bar, side in signals
    ]
    fees = QUANTITY * (CLOSES[3] + CLOSES[6]) * TAKER
    [trade] = result.trades
    assert trade.pnl == pytest.approx(QUANTITY * (CLOSES[6] - CLOSES[3]) - fees, rel=1e-12)
    final = 10_000.0 + trade.pnl - QUANTITY * CLOSES[9] * (1 + TAKER) + QUANTITY * CLOSES[-1]
    assert result.metrics.final_equity == pytest.approx(final, rel=1e-12)
