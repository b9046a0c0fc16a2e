"""Parameter sweeps: one strategy over a grid of params, planned, run, ranked.

A sweep is planned once (`plan_sweep`: the grid expanded under its cap, each combination's
params checked, the ones the strategy forbids together skipped with their reason), each run is
an ordinary backtest, and the runs that ended are ranked (`rank_sweep`) into the `SweepRanking`
stored as the sweep's result. Production queues the runs as jobs for the workers
(`strategies.service`, `strategies.sweep_record`); `run_serially` runs the same plan one run
after another in this process and ranks it the same way: the reference a distributed sweep
must equal, and the serial time the benchmarks compare against.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence

import msgspec
import polars as pl

from strategies.errors import InvalidRequest, ParameterConflictError, ParameterError, SpecError
from strategies.registry import ParamValue, StrategyRegistry, validate_params
from strategies.request import bad_param, bad_spec
from strategies.result import Metrics
from strategies.runner import run_backtest
from strategies.search import Search, Told, ask
from strategies.spec import BacktestSpec

#: A sweep larger than this is a mistake or a denial of service, not a research question.
MAX_COMBINATIONS = 1000
#: Metrics a sweep can rank by, and whether larger is better.
RANKABLE: dict[str, bool] = {
    "total_return": True,
    "cagr": True,
    "sharpe": True,
    "sortino": True,
    "calmar": True,
    "max_drawdown": False,
    "annual_volatility": False,
    "win_rate": True,
    "profit_factor": True,
    "expectancy": True,
    "final_equity": True,
}


class SkippedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A combination of the grid the strategy refuses (e.g. fast >= slow); never run."""

    params: dict[str, ParamValue]
    reason: str


class SweepPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What a sweep runs: one spec per accepted combination, in grid order."""

    base: BacktestSpec
    grid: dict[str, list[ParamValue]]
    rank_by: str
    runs: list[BacktestSpec]
    skipped: list[SkippedRun]


class SweepRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of a sweep as it ended; `metrics` when it succeeded."""

    id: str
    params: dict[str, ParamValue]
    status: str
    metrics: Metrics | None = None
    error: str | None = None


class RankedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run that succeeded: its record id, its params, its metrics."""

    id: str
    params: dict[str, ParamValue]
    metrics: Metrics


class FailedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run that failed or was cancelled, and why."""

    id: str
    params: dict[str, ParamValue]
    status: str
    error: str | None


class SweepRanking(msgspec.Struct, frozen=True, kw_only=True):
    """A sweep's result, stored as its record's `metrics_json`: runs best first by `rank_by`,
    runs where that metric is undefined last, ties in grid order."""

    rank_by: str
    runs: list[RankedRun]
    failed: list[FailedRun] = msgspec.field(default_factory=list)
    skipped: list[SkippedRun] = msgspec.field(default_factory=list)
    #: Runs asked so far: a search's next batch is asked once all of them have ended.
    asked: int = 0
    #: The trial number the last batch asked starts at (the runs before it are its history).
    batch_from: int = 0


class SerialSweep(msgspec.Struct, frozen=True, kw_only=True):
    """A sweep run in this process: its ranking and each run's own time, in plan order."""

    ranking: SweepRanking
    run_s: list[float]


def parameter_grid(grid: Mapping[str, Sequence[ParamValue]]) -> list[dict[str, ParamValue]]:
    """Every combination of the values, in the grid's order: {a: [1, 2], b: [3]} gives
    [{a: 1, b: 3}, {a: 2, b: 3}]."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def plan_sweep(
    base: BacktestSpec,
    grid: object,
    rank_by: str,
    *,
    max_runs: int = MAX_COMBINATIONS,
    registry: StrategyRegistry | None = None,
) -> SweepPlan:
    """One run per combination of `grid` (each overriding `base.params`), at most `max_runs`,
    the strategy looked up in `registry` (the built-ins by default).

    Raises `InvalidRequest` for an unknown `rank_by`, a grid that is not a non-empty mapping of
    non-empty lists, more combinations than `max_runs`, a parameter the strategy does not have
    or a value it refuses alone, and a grid whose every combination the strategy refuses.
    """
    if rank_by not in RANKABLE:
        raise InvalidRequest("rank_by", f"expected one of {', '.join(RANKABLE)}, got {rank_by!r}")
    if not isinstance(grid, Mapping) or not grid:
        expected = "an object mapping parameter names to lists of values"
        raise InvalidRequest("grid", f"expected {expected}, got {grid!r}")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            expected = "a non-empty list of values"
            raise InvalidRequest(f"grid.{name}", f"expected {expected}, got {values!r}")
    count = math.prod(len(values) for values in grid.values())
    if count > max_runs:
        raise InvalidRequest("grid", f"expected at most {max_runs} combinations, got {count}")
    runs: list[BacktestSpec] = []
    skipped: list[SkippedRun] = []
    for overrides in parameter_grid(grid):
        params = {**base.params, **overrides}
        try:
            checked = validate_params(base.strategy, params, registry)
        except ParameterConflictError as error:
            skipped.append(SkippedRun(params=params, reason=str(error)))
            continue
        except ParameterError as error:
            where = "grid" if error.parameter in overrides else "params"
            raise bad_param(error, f"{where}.{error.parameter}") from error
        try:
            runs.append(msgspec.structs.replace(base, params=checked))
        except SpecError as error:
            raise bad_spec(error) from error
    if not runs:
        raise InvalidRequest("grid", f"the strategy refuses every combination: {skipped[0].reason}")
    return SweepPlan(base=base, grid=dict(grid), rank_by=rank_by, runs=runs, skipped=skipped)


def rank_sweep(
    rank_by: str, runs: Sequence[SweepRun], skipped: Sequence[SkippedRun] = ()
) -> SweepRanking:
    """The ranking of `runs` (in grid order): those that succeeded best first by `rank_by`,
    the ones where it is undefined last, ties in grid order; the others listed as failed."""
    larger_is_better = RANKABLE[rank_by]

    def key(run: RankedRun) -> tuple[bool, float]:
        value = getattr(run.metrics, rank_by)
        if value is None:
            return (True, 0.0)
        return (False, -value if larger_is_better else value)

    succeeded = [
        RankedRun(id=run.id, params=run.params, metrics=run.metrics)
        for run in runs
        if run.status == "SUCCEEDED" and run.metrics is not None
    ]
    failed = [
        FailedRun(id=run.id, params=run.params, status=run.status, error=run.error)
        for run in runs
        if not (run.status == "SUCCEEDED" and run.metrics is not None)
    ]
    # sorted() is stable and runs arrive in grid order: ties keep it, so reruns rank alike.
    return SweepRanking(
        rank_by=rank_by, runs=sorted(succeeded, key=key), failed=failed, skipped=list(skipped)
    )


def run_serially(
    candles: pl.DataFrame, plan: SweepPlan, registry: StrategyRegistry | None = None
) -> SerialSweep:
    """Every run of `plan` in this process, one after another, ranked as a queued sweep is.
    Runs are named by their index in the plan (`"0"`, `"1"`...)."""
    runs: list[SweepRun] = []
    run_s: list[float] = []
    for index, spec in enumerate(plan.runs):
        started = time.perf_counter()
        result = run_backtest(candles, spec, registry=registry)
        run_s.append(time.perf_counter() - started)
        runs.append(SweepRun(id=str(index), params=dict(spec.params), status="SUCCEEDED",
                             metrics=result.metrics))
    return SerialSweep(ranking=rank_sweep(plan.rank_by, runs, plan.skipped), run_s=run_s)


class StoredSweep(msgspec.Struct, frozen=True, kw_only=True):
    """What a sweep's record holds as its spec: a grid, or a search; `fold` for the in-sample
    sweep of a walk-forward's fold."""

    base: BacktestSpec
    rank_by: str
    grid: dict[str, list[ParamValue]] | None = None
    search: Search | None = None
    fold: int | None = None


def plan_json(plan: SweepPlan, *, fold: int | None = None) -> str:
    """What a grid sweep's record stores as its spec: the base spec with `grid` and
    `rank_by` (and `fold`, in a walk-forward)."""
    return _stored_json(plan.base, plan.rank_by, {"grid": plan.grid}, fold)


def search_json(base: BacktestSpec, search: Search, rank_by: str, *, fold: int | None = None
                ) -> str:
    """What a searching sweep's record stores as its spec: the base spec with `search` and
    `rank_by` (and `fold`)."""
    return _stored_json(base, rank_by, {"search": msgspec.to_builtins(search)}, fold)


def _stored_json(base: BacktestSpec, rank_by: str, how: dict[str, object], fold: int | None
                 ) -> str:
    stored = {**msgspec.to_builtins(base), **how, "rank_by": rank_by}
    if fold is not None:
        stored["fold"] = fold
    return msgspec.json.encode(stored).decode()


def read_sweep(spec_json: str) -> StoredSweep:
    """A sweep's stored spec (`plan_json`, `search_json`)."""
    stored = msgspec.json.decode(spec_json)
    how = {key: stored.pop(key) for key in ("grid", "search", "rank_by", "fold") if key in stored}
    return msgspec.convert({**how, "base": stored}, StoredSweep)


def replan(spec_json: str, registry: StrategyRegistry | None = None) -> SweepPlan:
    """The plan of a stored grid sweep again, from its record's spec (`plan_json`); the
    strategy looked up in `registry` (the built-ins by default)."""
    stored = read_sweep(spec_json)
    assert stored.grid is not None, "a search has no plan"
    return plan_sweep(stored.base, stored.grid, stored.rank_by, registry=registry)


def search_batch(
    base: BacktestSpec, search: Search, rank_by: str, history: Sequence[Told], count: int,
    registry: StrategyRegistry | None = None,
) -> list[BacktestSpec]:
    """The next `count` runs of a search (fewer when the strategy refuses too many of the
    asked combinations), after the trials in `history` (`strategies.search.ask`); the
    strategy looked up in `registry` (the built-ins by default)."""

    def accept(params: dict[str, ParamValue]) -> bool:
        try:
            validate_params(base.strategy, {**base.params, **params}, registry)
        except ParameterConflictError:
            return False
        return True

    asked = ask(search, history, maximize=RANKABLE[rank_by], count=count, accept=accept)
    return [
        msgspec.structs.replace(
            base, params=validate_params(base.strategy, {**base.params, **params}, registry)
        )
        for params in asked
    ]


def told(run: SweepRun, rank_by: str) -> Told:
    """A search's earlier run as its sampler is told it: the `rank_by` metric, or None."""
    value = getattr(run.metrics, rank_by) if run.metrics is not None else None
    return Told(dict(run.params), value)
