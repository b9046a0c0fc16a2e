"""A sweep's own record, kept up to date by whoever ends one of its runs.

No process owns a sweep: its runs are jobs like any other, run by any worker. The worker that
ends a run (or the server that cancels one) calls `advance_sweep`, which counts the sweep's
runs by status: while some are still queued or running, the sweep is RUNNING with the share of
runs that have ended as its progress; once none are, it gets its ranking and its final status
(SUCCEEDED if any run succeeded, FAILED otherwise). Every write is a compare-and-set on the
sweep's record, tried again on a conflict, so two workers ending the last two runs at once
store one ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from db.backtest_store import BacktestRecord, BacktestStore
from strategies.jobs import ACTIVE, TERMINAL
from strategies.registry import StrategyRegistry
from strategies.result import Metrics
from strategies.spec import BacktestSpec
from strategies.sweep import SweepRanking, SweepRun, rank_sweep, replan

Announce = Callable[[BacktestRecord], None]


def start_sweep(store: BacktestStore, sweep_id: str, now_ns: int, announce: Announce) -> None:
    """Mark a queued sweep RUNNING (one of its runs has started)."""
    while True:
        sweep = store.backtest(sweep_id)
        if sweep is None or sweep.status != "QUEUED":
            return
        running = msgspec.structs.replace(sweep, status="RUNNING", started_ns=now_ns)
        if store.swap_backtest(sweep, running):
            announce(running)
            return


def advance_sweep(
    store: BacktestStore, sweep_id: str, now_ns: int, announce: Announce,
    registry: StrategyRegistry | None = None,
) -> None:
    """Bring the sweep's record up to date with its runs (see the module docstring); its
    strategy is looked up in `registry` (the built-ins by default) to plan it again."""
    while True:
        sweep = store.backtest(sweep_id)
        if sweep is None or sweep.status in TERMINAL:
            return
        counts = store.backtest_counts(sweep_id)
        total = sum(counts.values())
        active = sum(counts.get(status, 0) for status in ACTIVE)
        if total == 0:
            return
        started = sweep.started_ns if sweep.started_ns is not None else now_ns
        if active:
            progress = (total - active) / total
            if sweep.status == "RUNNING" and progress <= sweep.progress:
                return
            new = msgspec.structs.replace(
                sweep, status="RUNNING", started_ns=started, progress=max(progress, sweep.progress)
            )
        else:
            runs = store.backtests(sweep_id=sweep_id, limit=total)
            ranking = ranking_of(sweep, runs, registry)
            new = msgspec.structs.replace(
                sweep, started_ns=started, finished_ns=now_ns,
                metrics_json=msgspec.json.encode(ranking).decode(),
                **_final(sweep, ranking),
            )
        if store.swap_backtest(sweep, new):
            announce(new)
            return


def ranking_of(
    sweep: BacktestRecord, runs: Sequence[BacktestRecord], registry: StrategyRegistry | None = None
) -> SweepRanking:
    """The ranking of a sweep's stored runs: those that ended, in grid order (the order their
    records were created in)."""
    plan = replan(sweep.spec_json, registry)
    ended = sorted((run for run in runs if run.status in TERMINAL), key=lambda r: r.created_ns)
    return rank_sweep(plan.rank_by, [_sweep_run(run) for run in ended], plan.skipped)


def _final(sweep: BacktestRecord, ranking: SweepRanking) -> dict[str, object]:
    if ranking.runs:
        return {"status": "SUCCEEDED", "progress": 1.0, "error": None}
    first = ranking.failed[0].error if ranking.failed else None
    return {"status": "FAILED", "error": f"every run failed; the first: {first}"}


def _sweep_run(record: BacktestRecord) -> SweepRun:
    spec = msgspec.json.decode(record.spec_json, type=BacktestSpec)
    metrics = None
    if record.status == "SUCCEEDED" and record.metrics_json is not None:
        metrics = msgspec.json.decode(record.metrics_json, type=Metrics)
    return SweepRun(
        id=record.id, params=dict(spec.params), status=record.status, metrics=metrics,
        error=record.error,
    )
