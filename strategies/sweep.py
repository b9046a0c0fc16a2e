"""Parameter sweeps: one strategy over a grid of params, run across a process pool, ranked.

Each combination is a full backtest in a worker process (NautilusTrader holds the GIL and keeps
per-process logging state, so processes, not threads). Combinations the strategy forbids
(e.g. fast >= slow in a grid of both) are skipped with their reason rather than failing the
sweep. Pass a long-lived `executor` from the server's worker pool to skip the pool's start-up
(about a second per worker to import NautilusTrader); without one, a pool is made and closed.
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed

import msgspec
import polars as pl

from strategies.errors import ParameterConflictError, SpecError
from strategies.registry import ParamValue, validate_params
from strategies.result import Metrics
from strategies.runner import run_backtest
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


class SweepRun(msgspec.Struct, frozen=True, kw_only=True):
    """One combination's outcome. `elapsed_s` is its own run time inside its worker."""

    params: dict[str, ParamValue]
    metrics: Metrics
    elapsed_s: float


class SkippedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A combination the strategy refuses, and why."""

    params: dict[str, ParamValue]
    reason: str


class SweepResult(msgspec.Struct, frozen=True, kw_only=True):
    """The runs best first by `rank_by` (runs where it is undefined last), and the skipped."""

    rank_by: str
    runs: list[SweepRun]
    skipped: list[SkippedRun]
    elapsed_s: float


def worker_pool(max_workers: int = 2) -> ProcessPoolExecutor:
    """A process pool for backtests: spawned workers (not forked: a fork would copy
    NautilusTrader's runtime and threads mid-flight) that import the runner as they start.
    Create one in the server's lifespan and pass it to `run_sweep`."""
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_load_runner,
    )


def warm_up(executor: Executor, workers: int) -> None:
    """Start every worker of a fresh pool, so the first sweep does not wait for imports."""
    seen: set[int] = set()
    while len(seen) < workers:
        seen |= set(executor.map(_worker_pid, range(workers)))


def parameter_grid(grid: Mapping[str, Sequence[ParamValue]]) -> list[dict[str, ParamValue]]:
    """Every combination of the values, in the grid's order: {a: [1, 2], b: [3]} gives
    [{a: 1, b: 3}, {a: 2, b: 3}]."""
    names = list(grid)
    for name in names:
        if isinstance(grid[name], str | bytes) or len(grid[name]) == 0:
            raise SpecError(f"grid.{name}", "a non-empty list of values", grid[name])
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def run_sweep(
    candles: pl.DataFrame,
    spec: BacktestSpec,
    grid: Mapping[str, Sequence[ParamValue]],
    *,
    rank_by: str = "sharpe",
    max_workers: int = 2,
    executor: Executor | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> SweepResult:
    """Backtest `spec` once per combination of `grid` (each overriding `spec.params`).

    Raises `BacktestInputError` before any run for an unknown metric, an empty or oversized
    grid, or a parameter the strategy does not have or a value of the wrong type.
    """
    if rank_by not in RANKABLE:
        raise SpecError("rank_by", f"one of {', '.join(RANKABLE)}", rank_by)
    combinations = parameter_grid(grid)
    if len(combinations) > MAX_COMBINATIONS:
        raise SpecError("grid", f"at most {MAX_COMBINATIONS} combinations", len(combinations))
    specs: list[BacktestSpec] = []
    skipped: list[SkippedRun] = []
    for overrides in combinations:
        params = {**spec.params, **overrides}
        try:
            validate_params(spec.strategy, params)
        except ParameterConflictError as error:
            skipped.append(SkippedRun(params=params, reason=str(error)))
            continue
        specs.append(msgspec.structs.replace(spec, params=params))
    started = time.perf_counter()
    runs = _run_all(candles, specs, max_workers, executor, on_progress)
    return SweepResult(
        rank_by=rank_by,
        runs=rank_runs(runs, rank_by),
        skipped=skipped,
        elapsed_s=time.perf_counter() - started,
    )


def run_one(candles: pl.DataFrame, spec: BacktestSpec) -> SweepRun:
    """One combination, as a worker runs it (a module-level function, so it pickles)."""
    started = time.perf_counter()
    result = run_backtest(candles, spec)
    return SweepRun(
        params=dict(spec.params), metrics=result.metrics, elapsed_s=time.perf_counter() - started
    )


def _run_all(
    candles: pl.DataFrame,
    specs: list[BacktestSpec],
    max_workers: int,
    executor: Executor | None,
    on_progress: Callable[[float], None] | None,
) -> list[SweepRun]:
    if not specs:
        return []
    own = executor is None
    pool = executor or worker_pool(max_workers)
    try:
        futures = {pool.submit(run_one, candles, each): index for index, each in enumerate(specs)}
        runs: list[SweepRun | None] = [None] * len(specs)
        for done, future in enumerate(as_completed(futures), start=1):
            runs[futures[future]] = future.result()
            if on_progress is not None:
                on_progress(done / len(specs))
        return [run for run in runs if run is not None]
    finally:
        if own:
            pool.shutdown(cancel_futures=True)


def _load_runner() -> None:
    importlib.import_module("strategies.runner")


def _worker_pid(_index: int) -> int:
    # A short pause lets a worker still importing take its share instead of one fast worker
    # answering every call.
    time.sleep(0.05)
    return os.getpid()


def rank_runs(runs: list[SweepRun], rank_by: str) -> list[SweepRun]:
    """`runs` best first by the metric `rank_by` (one of `RANKABLE`), runs where it is
    undefined last, ties in their given order."""
    larger_is_better = RANKABLE[rank_by]

    def key(run: SweepRun) -> tuple[bool, float]:
        value = getattr(run.metrics, rank_by)
        if value is None:
            return (True, 0.0)
        return (False, -value if larger_is_better else value)

    # sorted() is stable and runs arrive in grid order: ties keep it, so reruns rank alike.
    return sorted(runs, key=key)
