"""Parameter sweeps over a real process pool: ranking, skipped combinations, bad input."""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pytest

from strategies.errors import ParameterError, SpecError
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec, EquityFraction
from strategies.sweep import SweepResult, parameter_grid, run_sweep

HOUR = 3_600_000_000_000
START = 1_700_002_800_000_000_000 // HOUR * HOUR
SPEC = BacktestSpec(
    exchange="test",
    symbol="BTC-USDT",
    timeframe="1h",
    strategy="ema_cross",
    params={"slow": 20},
    sizing=EquityFraction(0.5),
)


def hourly_walk(count: int) -> pl.DataFrame:
    rng = np.random.default_rng(21)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, count))), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    return pl.DataFrame(
        {
            "ts": [START + i * HOUR for i in range(count)],
            "open": opens,
            "high": np.maximum(opens, closes),
            "low": np.minimum(opens, closes),
            "close": closes,
            "volume": np.full(count, 1.0),
        }
    )


@pytest.fixture(scope="module")
def sweep() -> SweepResult:
    grid = {"fast": [3, 5, 8, 25]}
    return run_sweep(hourly_walk(400), SPEC, grid, rank_by="total_return", max_workers=2)


def test_runs_are_ranked_best_first_and_conflicts_are_skipped(sweep: SweepResult) -> None:
    returns = [run.metrics.total_return for run in sweep.runs]

    assert sorted(run.params["fast"] for run in sweep.runs) == [3, 5, 8]
    assert all(run.params["slow"] == 20 for run in sweep.runs)
    assert returns == sorted(returns, reverse=True)
    assert [skipped.params for skipped in sweep.skipped] == [{"slow": 20, "fast": 25}]
    assert "expected < slow (20), got 25" in sweep.skipped[0].reason
    assert sweep.rank_by == "total_return"


def test_a_worker_run_equals_the_same_run_in_process(sweep: SweepResult) -> None:
    best = sweep.runs[0]
    spec = msgspec.structs.replace(SPEC, params=best.params)

    assert run_backtest(hourly_walk(400), spec).metrics == best.metrics


def test_grid_expands_in_order() -> None:
    assert parameter_grid({"a": [1, 2], "b": [3.0]}) == [{"a": 1, "b": 3.0}, {"a": 2, "b": 3.0}]


def test_bad_sweeps_are_refused_before_any_run() -> None:
    frame = hourly_walk(10)
    with pytest.raises(SpecError, match="field 'rank_by': expected one of total_return"):
        run_sweep(frame, SPEC, {"fast": [3]}, rank_by="luck")
    with pytest.raises(SpecError, match=r"field 'grid\.fast': expected a non-empty list"):
        run_sweep(frame, SPEC, {"fast": []})
    with pytest.raises(ParameterError, match="parameter 'fats'"):
        run_sweep(frame, SPEC, {"fats": [3]})
