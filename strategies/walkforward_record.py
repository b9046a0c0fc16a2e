"""Keeping sweeps and walk-forwards up to date as their runs end: `advance` and `start`.

A walk-forward's record (`kind="walkforward"`) has children with `sweep_id` set to its id: one
in-sample sweep per fold (its spec names the fold) and, once that sweep has ended, the fold's
out-of-sample run. No process owns it:

- whoever ends a run calls `advance` on the run's `sweep_id`: for a sweep, `sweep_record`
  brings it up to date; the process whose compare-and-set ended a fold's sweep stores the
  fold's out-of-sample run (the sweep's best params on the test window) and returns its job;
- then the walk-forward itself: while a fold is unfinished, its progress (each fold counts
  0.9 for its sweep, 0.1 for its test run); once every fold has ended, its result
  (`strategies.walkforward`): the fold results, the stitched out-of-sample curve and trades
  (stored as the walk-forward's own) and its metrics, in one compare-and-set.

Jobs returned are for the caller to queue (a worker's slot hands them back with the attempt's
end, and the worker queues them before it acks the run's job). If that process dies after the
run ended but before its jobs were queued, the queue delivers the run's job again, and the
worker that gets it finds the run ended and calls `resume`, which does what was left undone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec
import polars as pl

from db.backtest_store import BacktestRecord, BacktestStore
from db.candle_store import CandleStore
from strategies.jobs import ACTIVE, TERMINAL, Job, child_id, job_of, new_record
from strategies.registry import StrategyRegistry
from strategies.result import Metrics
from strategies.sweep import SweepRanking, read_sweep
from strategies.sweep_record import advance_sweep, start_sweep
from strategies.walkforward import (
    FoldResult,
    WalkForwardResult,
    efficiency,
    read_walkforward,
    stitch,
)

Announce = Callable[[BacktestRecord], None]
#: More children than any walk-forward has.
_MAX_CHILDREN = 1_000_000
_ALL_TRADES = 100_000_000


class ParentStore(BacktestStore, CandleStore, Protocol):
    """Records, results and candles (for the stitched curve's closes)."""


def start(store: BacktestStore, id: str, now_ns: int, announce: Announce) -> None:
    """Mark a queued sweep or walk-forward RUNNING (one of its runs has started), and the
    walk-forward a fold's sweep belongs to."""
    record = store.backtest(id)
    start_sweep(store, id, now_ns, announce)
    if record is not None and record.sweep_id is not None:
        start_sweep(store, record.sweep_id, now_ns, announce)


def advance(
    store: ParentStore, id: str, now_ns: int, announce: Announce,
    registry: StrategyRegistry | None = None,
) -> list[Job]:
    """Bring the sweep or walk-forward `id` (a run's `sweep_id`) up to date; the jobs to
    queue (a search's next batch, a fold's test run). Strategies are looked up in `registry`
    (the built-ins by default)."""
    record = store.backtest(id)
    if record is None:
        return []
    if record.kind == "walkforward":
        return advance_walkforward(store, id, now_ns, announce)
    ended, jobs = advance_sweep(store, id, now_ns, announce, registry)
    if record.sweep_id is not None:
        if ended is not None:
            jobs += _open_test(store, ended, now_ns)
        jobs += advance_walkforward(store, record.sweep_id, now_ns, announce)
    return jobs


def resume(
    store: ParentStore, id: str, now_ns: int, announce: Announce,
    registry: StrategyRegistry | None = None,
) -> list[Job]:
    """Carry on where a process that died while ending a run of the sweep or walk-forward `id`
    left off (its job came back from the queue, and the run had ended): do what `advance`
    does, store a search's batch asked for but not stored, and a fold's test run not stored
    after its sweep ended; then queue again every run of it still QUEUED, since the dead
    process may not have queued them (the queue drops a job it already holds, and a worker
    skips a second delivery of a run another attempt holds). The jobs to queue."""
    record = store.backtest(id)
    if record is None:
        return []
    jobs: list[Job] = []
    if record.kind == "sweep":
        _, jobs = advance_sweep(store, id, now_ns, announce, registry, resume=True)
    walk_id = id if record.kind == "walkforward" else record.sweep_id
    if walk_id is not None:
        for fold in store.backtests(sweep_id=walk_id, limit=_MAX_CHILDREN):
            if fold.kind == "sweep" and store.backtest(child_id(fold.id, "test")) is None:
                jobs += _open_test(store, fold, now_ns)
    jobs += advance(store, id, now_ns, announce, registry)
    # A sweep's runs keep no equity curve; a walk-forward's test runs do (it is stitched).
    owners = [(id, False)] if record.kind == "sweep" else []
    owners += [(walk_id, True)] if walk_id is not None else []
    for owner, keep_equity in owners:
        for run in store.backtests(sweep_id=owner, status="QUEUED", limit=_MAX_CHILDREN):
            if run.kind == "backtest":
                jobs.append(job_of(run, keep_equity=keep_equity))
    return list({job.id: job for job in jobs}.values())


def _open_test(store: BacktestStore, sweep: BacktestRecord, now_ns: int) -> list[Job]:
    """The out-of-sample run of the fold whose sweep just ended, when it succeeded."""
    if sweep.status != "SUCCEEDED" or sweep.metrics_json is None or sweep.sweep_id is None:
        return []
    parent = store.backtest(sweep.sweep_id)
    if parent is None or parent.status in TERMINAL:
        return []
    best = msgspec.json.decode(sweep.metrics_json, type=SweepRanking).runs[0]
    fold = read_walkforward(parent.spec_json).folds[read_sweep(sweep.spec_json).fold or 0]
    spec = msgspec.structs.replace(read_sweep(sweep.spec_json).base, params=best.params)
    run = new_record(spec, kind="backtest", start_ns=fold.test_start_ns,
                     end_ns=fold.test_end_ns, created_ns=now_ns, sweep_id=parent.id,
                     id=child_id(sweep.id, "test"))
    store.put_backtest(run)
    return [Job(id=run.id, spec=spec, start_ns=run.start_ns, end_ns=run.end_ns,
                sweep_id=parent.id)]


def advance_walkforward(store: ParentStore, id: str, now_ns: int, announce: Announce
                        ) -> list[Job]:
    """See the module docstring."""
    while True:
        walk = store.backtest(id)
        if walk is None or walk.status in TERMINAL:
            return []
        stored = read_walkforward(walk.spec_json)
        children = store.backtests(sweep_id=id, limit=_MAX_CHILDREN)
        sweeps = {read_sweep(c.spec_json).fold: c for c in children if c.kind == "sweep"}
        tests = {c.start_ns: c for c in children if c.kind == "backtest"}
        parts = []
        for fold in stored.folds:
            sweep, test = sweeps.get(fold.index), tests.get(fold.test_start_ns)
            if sweep is None or sweep.status in ACTIVE:
                parts.append(0.9 * (sweep.progress if sweep is not None else 0.0))
            elif sweep.status == "SUCCEEDED" and test is None:
                parts.append(0.9)  # its test run is being stored
            elif test is not None and test.status in ACTIVE:
                parts.append(0.9 + 0.1 * test.progress)
            else:
                parts.append(1.0)
        started = walk.started_ns if walk.started_ns is not None else now_ns
        progress = sum(parts) / len(parts)
        if progress < 1.0:
            if walk.status == "RUNNING" and progress <= walk.progress:
                return []
            new = msgspec.structs.replace(walk, status="RUNNING", started_ns=started,
                                          progress=max(progress, walk.progress))
            if store.swap_backtest(walk, new):
                announce(new)
                return []
            continue
        new, trades, equity = _finished(store, walk, sweeps, tests, now_ns)
        new = msgspec.structs.replace(new, started_ns=started)
        if store.swap_backtest(walk, new, trades=trades, equity=equity):
            announce(new)
            return []


def _finished(
    store: ParentStore, walk: BacktestRecord, sweeps: dict[int | None, BacktestRecord],
    tests: dict[int, BacktestRecord], now_ns: int,
) -> tuple[BacktestRecord, pl.DataFrame | None, pl.DataFrame | None]:
    stored = read_walkforward(walk.spec_json)
    results: list[FoldResult] = []
    for fold in stored.folds:
        sweep, test = sweeps[fold.index], tests.get(fold.test_start_ns)
        params = in_sample = out_of_sample = None
        if sweep.metrics_json is not None:
            ranking = msgspec.json.decode(sweep.metrics_json, type=SweepRanking)
            if ranking.runs and sweep.status == "SUCCEEDED":
                params, in_sample = ranking.runs[0].params, ranking.runs[0].metrics
        if test is not None and test.status == "SUCCEEDED" and test.metrics_json is not None:
            out_of_sample = msgspec.json.decode(test.metrics_json, type=Metrics)
        last = test if test is not None else sweep
        error = None
        if last.status != "SUCCEEDED":
            where = "out-of-sample run" if test is not None else "in-sample sweep"
            error = f"its {where} {last.status.lower()}: {last.error or 'no reason given'}"
        results.append(FoldResult(
            window=fold, sweep_id=sweep.id, test_id=test.id if test is not None else None,
            params=params, in_sample=in_sample, out_of_sample=out_of_sample,
            status=last.status, error=error,
        ))
    failed = [result for result in results if result.status != "SUCCEEDED"]
    if failed:
        result = WalkForwardResult(rank_by=stored.rank_by, folds=results)
        first = failed[0]
        return msgspec.structs.replace(
            walk, status="FAILED", finished_ns=now_ns, progress=1.0,
            error=f"fold {first.window.index}: {first.error}",
            metrics_json=msgspec.json.encode(result).decode(),
        ), None, None
    test_ids = [result.test_id for result in results]
    spec = stored.base
    first_fold, last_fold = stored.folds[0], stored.folds[-1]
    closes = store.candles_frame(
        spec.exchange, spec.symbol, spec.timeframe, first_fold.test_start_ns,
        last_fold.test_end_ns, columns=["close"],
    )
    stitched = stitch(
        [store.backtest_equity(test_id) for test_id in test_ids if test_id is not None],
        [store.backtest_trades(test_id, limit=_ALL_TRADES)
         for test_id in test_ids if test_id is not None],
        [result.out_of_sample.total_fees for result in results if result.out_of_sample],
        closes, starting_equity=spec.starting_balance, start_ns=first_fold.test_start_ns,
        timeframe_ns=spec.timeframe_ns,
    )
    result = WalkForwardResult(
        rank_by=stored.rank_by, folds=results, metrics=stitched.metrics,
        efficiency=efficiency(
            stitched.metrics, [r.in_sample for r in results if r.in_sample is not None]
        ),
    )
    done = msgspec.structs.replace(
        walk, status="SUCCEEDED", finished_ns=now_ns, progress=1.0, error=None,
        metrics_json=msgspec.json.encode(result).decode(),
    )
    return done, stitched.trades, stitched.equity
