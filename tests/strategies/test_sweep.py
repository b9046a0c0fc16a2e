"""Parameter sweeps: the plan, ranking and skipped combinations, bad input.

A sweep through the queue and real worker processes is checked against `run_serially` in
`tests/server/test_backtest_distribution.py`."""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pytest

from strategies.errors import InvalidRequest
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec, EquityFraction
from strategies.sweep import (
    SerialSweep,
    SweepRun,
    parameter_grid,
    plan_json,
    plan_sweep,
    rank_sweep,
    replan,
    run_serially,
)

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
def sweep() -> SerialSweep:
    plan = plan_sweep(SPEC, {"fast": [3, 5, 8, 25]}, "total_return")
    return run_serially(hourly_walk(400), plan)


def test_runs_are_ranked_best_first_and_conflicts_are_skipped(sweep: SerialSweep) -> None:
    ranking = sweep.ranking
    returns = [run.metrics.total_return for run in ranking.runs]

    assert sorted(run.params["fast"] for run in ranking.runs) == [3, 5, 8]
    assert all(run.params["slow"] == 20 for run in ranking.runs)
    assert returns == sorted(returns, reverse=True)
    assert [skipped.params for skipped in ranking.skipped] == [{"slow": 20, "fast": 25}]
    assert "expected < slow (20), got 25" in ranking.skipped[0].reason
    assert ranking.rank_by == "total_return"
    assert ranking.failed == []
    assert len(sweep.run_s) == 3 and all(seconds > 0 for seconds in sweep.run_s)


def test_a_ranked_run_equals_the_same_run_alone(sweep: SerialSweep) -> None:
    best = sweep.ranking.runs[0]
    spec = msgspec.structs.replace(SPEC, params=best.params)

    assert run_backtest(hourly_walk(400), spec).metrics == best.metrics


def test_runs_without_the_metric_rank_last_and_failures_are_listed_in_grid_order(
    sweep: SerialSweep,
) -> None:
    [first, second, third] = sweep.ranking.runs
    undefined = msgspec.structs.replace(first.metrics, sharpe=None)
    runs = [
        SweepRun(id="a", params=first.params, status="SUCCEEDED", metrics=undefined),
        SweepRun(id="b", params=second.params, status="FAILED", error="boom"),
        SweepRun(id="c", params=third.params, status="SUCCEEDED", metrics=third.metrics),
        SweepRun(id="d", params=second.params, status="CANCELLED"),
    ]
    ranking = rank_sweep("sharpe", runs)

    assert [run.id for run in ranking.runs] == ["c", "a"]
    assert [(run.id, run.status, run.error) for run in ranking.failed] == [
        ("b", "FAILED", "boom"), ("d", "CANCELLED", None)]


def test_grid_expands_in_order() -> None:
    assert parameter_grid({"a": [1, 2], "b": [3.0]}) == [{"a": 1, "b": 3.0}, {"a": 2, "b": 3.0}]


def test_a_stored_plan_plans_the_same_sweep_again() -> None:
    plan = plan_sweep(SPEC, {"fast": [3, 25], "slow": [20, 30]}, "sharpe")

    assert replan(plan_json(plan)) == plan


@pytest.mark.parametrize(
    ("grid", "rank_by", "field", "message"),
    [
        ({"fast": [3]}, "luck", "rank_by", "expected one of total_return"),
        ({"fast": []}, "sharpe", "grid.fast", "expected a non-empty list"),
        ({"fast": 3}, "sharpe", "grid.fast", "expected a non-empty list of values, got 3"),
        ({}, "sharpe", "grid", "expected an object mapping parameter names"),
        ({"fats": [3]}, "sharpe", "grid.fats", "expected one of the parameters fast"),
        ({"fast": [1]}, "sharpe", "grid.fast", "expected int in [2"),
        ({"fast": [3, 4, 5], "slow": [20, 30]}, "sharpe", "grid",
         "expected at most 5 combinations, got 6"),
        ({"fast": [25, 30]}, "sharpe", "grid", "the strategy refuses every combination"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_field(
    grid: object, rank_by: str, field: str, message: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        plan_sweep(SPEC, grid, rank_by, max_runs=5)

    assert refused.value.field == field
    assert message in refused.value.message
