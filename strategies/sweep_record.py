"""A sweep's own record, kept up to date by whoever ends one of its runs.

No process owns a sweep: its runs are jobs like any other, run by any worker. The worker that
ends a run (or the server that cancels one) calls `advance_sweep`, which counts the sweep's
runs by status: while some are still queued or running, the sweep is RUNNING with the share of
runs that have ended as its progress; once none are, it gets its ranking and its final status
(SUCCEEDED if any run succeeded, FAILED otherwise). Every write is a compare-and-set on the
sweep's record, tried again on a conflict, so two workers ending the last two runs at once
store one ranking.

A search (RANDOM or TPE, `strategies.search`) runs in batches: when none of its runs is
queued or running and its budget of trials is not spent, `advance_sweep` asks the next batch
from every run so far and returns its jobs for the caller to queue. The sweep's record says
how many runs it has asked for (its ranking so far, stored as it goes), written before the
runs' records: a second process ending a run at the same moment sees more runs asked than
stored and leaves the batch to the first. A batch's runs have ids derived from the sweep's and
their trial numbers (`strategies.jobs.child_id`), and the same history asks the same batch
again, so if the first process died before storing them, `resume=True` (a redelivered job of
the sweep, `strategies.walkforward_record.resume`) stores exactly those runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from db.backtest_store import BacktestRecord, BacktestStore
from strategies.jobs import ACTIVE, TERMINAL, Job, child_id, new_record
from strategies.registry import StrategyRegistry
from strategies.result import Metrics
from strategies.spec import BacktestSpec
from strategies.sweep import (
    StoredSweep,
    SweepRanking,
    SweepRun,
    rank_sweep,
    read_sweep,
    replan,
    search_batch,
    told,
)

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
    registry: StrategyRegistry | None = None, *, resume: bool = False,
) -> tuple[BacktestRecord | None, list[Job]]:
    """Bring the sweep's record up to date with its runs (see the module docstring); its
    strategy is looked up in `registry` (the built-ins by default). Returns the sweep's final
    record when this call ended it, and the jobs of a search's next batch (the caller queues
    them). With `resume`, a batch asked for but not stored is stored."""
    while True:
        sweep = store.backtest(sweep_id)
        if sweep is None or sweep.status in TERMINAL:
            return None, []
        counts = store.backtest_counts(sweep_id)
        total = sum(counts.values())
        active = sum(counts.get(status, 0) for status in ACTIVE)
        if total == 0:
            return None, []
        stored = read_sweep(sweep.spec_json)
        search = stored.search
        asked = _ranking(sweep)
        if resume and search is not None and asked.asked > total:
            # The process that asked for the batch died before storing all of it.
            return None, _store_missing(store, sweep, stored, asked, now_ns, registry)
        started = sweep.started_ns if sweep.started_ns is not None else now_ns
        planned = search.trials if search is not None else total
        jobs: list[Job] = []
        new_runs: list[BacktestRecord] = []
        if active:
            progress = (total - active) / planned
            if sweep.status == "RUNNING" and progress <= sweep.progress:
                return None, []
            new = msgspec.structs.replace(
                sweep, status="RUNNING", started_ns=started, progress=max(progress, sweep.progress)
            )
        else:
            runs = store.backtests(sweep_id=sweep_id, limit=total)
            ranking = ranking_of(sweep, runs, registry)
            if search is not None and asked.asked > total:
                return None, []  # another process is storing the next batch's runs
            if search is not None and total < search.trials:
                count = min(search.batch, search.trials - total)
                specs = _next_batch(stored, runs, count, registry)
                new_runs = [_trial(sweep, total + i, spec, now_ns) for i, spec in enumerate(specs)]
                jobs = [_job(run, spec) for run, spec in zip(new_runs, specs, strict=True)]
            if jobs:
                ranking = msgspec.structs.replace(
                    ranking, asked=total + len(jobs), batch_from=total
                )
                new = msgspec.structs.replace(
                    sweep, status="RUNNING", started_ns=started, progress=total / planned,
                    metrics_json=msgspec.json.encode(ranking).decode(),
                )
            else:
                new = msgspec.structs.replace(
                    sweep, started_ns=started, finished_ns=now_ns,
                    metrics_json=msgspec.json.encode(ranking).decode(),
                    **_final(sweep, ranking),
                )
        if store.swap_backtest(sweep, new):
            # The sweep says how many runs it asked for before they exist: a process that
            # sees fewer waits for them instead of asking the batch again.
            for run in new_runs:
                store.put_backtest(run)
            announce(new)
            return (new if new.status in TERMINAL else None), jobs


def ranking_of(
    sweep: BacktestRecord, runs: Sequence[BacktestRecord], registry: StrategyRegistry | None = None
) -> SweepRanking:
    """The ranking of a sweep's stored runs: those that ended, in grid (or trial) order (the
    order their records were created in); the strategy looked up in `registry`."""
    stored = read_sweep(sweep.spec_json)
    skipped = replan(sweep.spec_json, registry).skipped if stored.grid is not None else []
    ended = sorted((run for run in runs if run.status in TERMINAL), key=lambda r: r.created_ns)
    ranking = rank_sweep(stored.rank_by, [_sweep_run(run) for run in ended], skipped)
    return msgspec.structs.replace(ranking, asked=len(runs))


def _next_batch(
    stored: StoredSweep, history: Sequence[BacktestRecord], count: int,
    registry: StrategyRegistry | None,
) -> list[BacktestSpec]:
    """A search's next `count` runs after the ended runs `history` (`search_batch`)."""
    assert stored.search is not None
    ended = sorted(history, key=lambda run: run.created_ns)
    told_so_far = [told(_sweep_run(run), stored.rank_by) for run in ended]
    return search_batch(stored.base, stored.search, stored.rank_by, told_so_far, count, registry)


def _trial(sweep: BacktestRecord, number: int, spec: BacktestSpec, now_ns: int
           ) -> BacktestRecord:
    """The record of trial `number` of a search (0 is the first), with an id derived from the
    sweep's: the same trial asked again has the same record."""
    return new_record(
        spec, kind="backtest", start_ns=sweep.start_ns, end_ns=sweep.end_ns,
        created_ns=now_ns + number, sweep_id=sweep.id, id=child_id(sweep.id, f"trial-{number}"),
    )


def _store_missing(
    store: BacktestStore, sweep: BacktestRecord, stored: StoredSweep, asked: SweepRanking,
    now_ns: int, registry: StrategyRegistry | None,
) -> list[Job]:
    """Store the runs of the last batch (trials `batch_from` to `asked`) that are missing: the
    same history asks the same batch again. Their jobs."""
    first, end = asked.batch_from, asked.asked
    runs = store.backtests(sweep_id=sweep.id, limit=end)
    batch_ids = {child_id(sweep.id, f"trial-{n}") for n in range(first, end)}
    history = [run for run in runs if run.id not in batch_ids]
    if len(history) != first or any(run.status not in TERMINAL for run in history):
        return []  # not the state a batch is asked in: nothing to resume
    specs = _next_batch(stored, history, end - first, registry)
    jobs = []
    for number, spec in enumerate(specs, start=first):
        run = _trial(sweep, number, spec, now_ns)
        if store.backtest(run.id) is None:
            store.put_backtest(run)
            jobs.append(_job(run, spec))
    return jobs


def _job(run: BacktestRecord, spec: BacktestSpec) -> Job:
    return Job(id=run.id, spec=spec, start_ns=run.start_ns, end_ns=run.end_ns,
               sweep_id=run.sweep_id, keep_equity=False)


def _ranking(sweep: BacktestRecord) -> SweepRanking:
    """The ranking stored so far (for a search: how many runs it has asked for)."""
    if sweep.metrics_json is None:
        return SweepRanking(rank_by="", runs=[])
    return msgspec.json.decode(sweep.metrics_json, type=SweepRanking)


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
