"""How a queued backtest runs: one attempt at one job, in a worker.

A worker (`candlegraph worker`, `server.backtest_worker`) pulls a job from the queue, claims it
with the queue's delivery number as the attempt (1, then 2... after a redelivery), and hands it
to one of its processes, which runs it (`run_attempt` does both in one process):

1. `claim`: a compare-and-set of the record from QUEUED (or RUNNING under an earlier attempt,
   whose worker was presumed dead) to RUNNING under this attempt, naming this worker. A record
   that has already ended (cancelled while it waited, or finished) is skipped; one claimed by
   a later attempt is left to that attempt.
2. `run_claimed`: load the candles from the store (every run of a sweep reads the same range:
   a process keeps the last one, `CandleCache`).
3. Run `strategies.runner.run_backtest`. After every batch of bars its progress is stored with
   a compare-and-set against the record as this attempt last wrote it; if that fails, someone
   cancelled the run or a later attempt took it over, and this attempt stops there, within a
   batch, storing nothing.
4. Store the result with its trades and equity curve in one compare-and-set, so a late result
   from an attempt presumed dead can never overwrite the retried run.
5. For a run of a sweep or walk-forward, bring its record up to date
   (`strategies.walkforward_record.advance`); jobs that asks for (a search's next batch, a
   fold's test run) go back to the worker with the attempt's end, to be queued before the ack.
   A job of a sweep's run that comes back from the queue (attempt 2 or later) for a run that
   has ended means the process that ended it may have died before this step, or before its
   jobs were queued: `strategies.walkforward_record.resume` does it again.

Every change is announced (for the progress subscriptions of every server) after it is stored.
The input's faults (`BacktestInputError`) and the engine's end the run FAILED with the reason;
they would fail again, so they are not retried. A store that cannot be reached ends the attempt
with `retry`: the worker hands the job back to the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, Protocol

import msgspec
import polars as pl

from db.backtest_store import (
    BACKTEST_EQUITY_SCHEMA,
    BACKTEST_TRADE_SCHEMA,
    BacktestRecord,
    BacktestStore,
)
from db.candle_store import CandleStore
from db.store import StoreError
from strategies.errors import BacktestInputError, UnknownStrategyError
from strategies.jobs import ACTIVE, TERMINAL, Job
from strategies.registry import StrategyRegistry, builtin_registry
from strategies.result import BacktestResult
from strategies.runner import run_backtest
from strategies.walkforward_record import advance, resume, start

log = logging.getLogger(__name__)

Announce = Callable[[BacktestRecord], None]
Clock = Callable[[], int]

#: What a worker is told when its last attempt vanished without a word.
SILENT_END = "its worker stopped before finishing it (killed, or silent for the ack wait)"


class AttemptStore(BacktestStore, CandleStore, Protocol):
    """The parts of the store an attempt uses: its record and results, and the candles."""


class AttemptEnd(msgspec.Struct, frozen=True, kw_only=True):
    """How an attempt ended, which says what to do with the job's delivery:

    - `ended`: this attempt stored the run's final status (ack it);
    - `gone`: the run had ended already, was stopped by a cancel, or has no record (ack it);
    - `superseded`: a later attempt owns the run (leave the delivery: that attempt acks);
    - `retry`: the store failed (hand the job back to the queue).
    """

    outcome: Literal["ended", "gone", "superseded", "retry"]
    status: str | None = None
    detail: str = ""
    #: Jobs to queue before the delivery is acked: a search's next batch, a fold's test run.
    jobs: list[Job] = msgspec.field(default_factory=list)


class CandleCache:
    """The candles of the sweep a process last ran: its next run reads the same range."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._frame: pl.DataFrame | None = None

    def get(self, store: AttemptStore, job: Job) -> pl.DataFrame:
        spec = job.spec
        key = (job.sweep_id, spec.exchange, spec.symbol, spec.timeframe, job.start_ns, job.end_ns)
        if job.sweep_id is not None and key == self._key and self._frame is not None:
            return self._frame
        frame = store.candles_frame(
            spec.exchange, spec.symbol, spec.timeframe, job.start_ns, job.end_ns
        )
        self._key, self._frame = key, frame
        return frame


class _Stop(Exception):
    """The record changed under this attempt: cancelled, or taken by a later attempt."""

    def __init__(self, found: BacktestRecord | None) -> None:
        super().__init__("the record changed under this attempt")
        self.found = found


def run_attempt(
    store: AttemptStore,
    job: Job,
    attempt: int,
    *,
    worker: str,
    announce: Announce,
    candles: CandleCache | None = None,
    clock: Clock = time.time_ns,
    registry: StrategyRegistry | None = None,
) -> AttemptEnd:
    """Run attempt `attempt` of `job` (see the module docstring): `claim`, announce, then
    `run_claimed`. Never raises for the run's own failures, which it stores; a store failure
    ends it with `retry`."""
    try:
        claimed = claim(store, job, attempt, worker=worker, clock=clock)
    except StoreError as error:
        return _retry(job, attempt, error)
    if isinstance(claimed, AttemptEnd):
        return not_run(
            store, job, attempt, claimed, announce=announce, clock=clock, registry=registry
        )
    announce(claimed)
    return run_claimed(
        store, job, claimed, announce=announce, candles=candles, clock=clock, registry=registry
    )


def claim(
    store: AttemptStore, job: Job, attempt: int, *, worker: str, clock: Clock = time.time_ns
) -> BacktestRecord | AttemptEnd:
    """Step 1: the record, now RUNNING under `attempt` and held by `worker` (announce it),
    or how the attempt ends without running. For a sweep's run, the sweep is RUNNING too.
    Raises `StoreError`."""
    while True:
        found = store.backtest(job.id)
        if found is None:
            return AttemptEnd(outcome="gone", detail="no record has this id")
        if found.status in TERMINAL:
            return AttemptEnd(outcome="gone", status=found.status, detail="already ended")
        if found.attempt >= attempt:
            return AttemptEnd(outcome="superseded", detail=f"attempt {found.attempt} holds it")
        claimed = msgspec.structs.replace(
            found, status="RUNNING", attempt=attempt, worker=worker, started_ns=clock(),
            progress=0.0, error=None,
        )
        if store.swap_backtest(found, claimed):
            return claimed


def not_run(
    store: AttemptStore, job: Job, attempt: int, end: AttemptEnd, *, announce: Announce,
    clock: Clock = time.time_ns, registry: StrategyRegistry | None = None,
) -> AttemptEnd:
    """How an attempt that `claim` did not let run ends. A redelivered job (attempt 2 or
    later) of a sweep's or walk-forward's run that has ended: whoever ended it may have died
    before step 5, so `resume` does it again, and its jobs go with the end."""
    if end.status not in TERMINAL or attempt == 1 or job.sweep_id is None:
        return end
    try:
        jobs = resume(store, job.sweep_id, clock(), announce, registry)
    except StoreError as error:
        return _retry(job, attempt, error)
    return msgspec.structs.replace(end, jobs=jobs)


def run_claimed(
    store: AttemptStore,
    job: Job,
    claimed: BacktestRecord,
    *,
    announce: Announce,
    candles: CandleCache | None = None,
    clock: Clock = time.time_ns,
    registry: StrategyRegistry | None = None,
) -> AttemptEnd:
    """Steps 2 to 5 for a record `claim` gave (see the module docstring); the strategy is
    looked up in `registry` (the built-ins by default), and a job naming one it does not hold
    ends FAILED, saying so."""
    try:
        if job.sweep_id is not None:
            start(store, job.sweep_id, clock(), announce)
        attempt = _Attempt(store, job, claimed, announce, candles or CandleCache(), clock)
        return attempt.run(registry or builtin_registry())
    except StoreError as error:
        return _retry(job, claimed.attempt, error)


def _retry(job: Job, attempt: int, error: StoreError) -> AttemptEnd:
    log.warning("backtest %s attempt %d: the store failed: %s", job.id, attempt, error)
    return AttemptEnd(outcome="retry", detail=f"the store failed: {error}")


class _Attempt:
    def __init__(
        self, store: AttemptStore, job: Job, claimed: BacktestRecord, announce: Announce,
        candles: CandleCache, clock: Clock,
    ) -> None:
        self.store = store
        self.job = job
        self.attempt = claimed.attempt
        self.announce = announce
        self.candles = candles
        self.clock = clock
        self.current = claimed

    def run(self, registry: StrategyRegistry) -> AttemptEnd:
        try:
            result = run_backtest(
                self.candles.get(self.store, self.job), self.job.spec, on_progress=self._progress,
                registry=registry,
            )
            end = self._finish(result)
        except _Stop as stop:
            return self._stopped(stop.found)
        except UnknownStrategyError as error:
            end = self._fail(_unknown_here(self.current.worker, error))
        except BacktestInputError as error:
            end = self._fail(str(error))
        except StoreError:
            raise
        except Exception as error:
            log.exception("backtest %s attempt %d failed", self.job.id, self.attempt)
            end = self._fail(f"{type(error).__name__}: {error}")
        if end.outcome == "ended" and self.job.sweep_id is not None:
            jobs = advance(
                self.store, self.job.sweep_id, self.clock(), self.announce, registry
            )
            end = msgspec.structs.replace(end, jobs=jobs)
        return end

    def _progress(self, fraction: float) -> None:
        current = self.current
        if fraction <= current.progress:
            found = self.store.backtest(current.id)
            if found != current:
                raise _Stop(found)
            return
        moved = msgspec.structs.replace(current, progress=fraction)
        if not self.store.swap_backtest(current, moved):
            raise _Stop(self.store.backtest(current.id))
        self.current = moved
        self.announce(moved)

    def _finish(self, result: BacktestResult) -> AttemptEnd:
        trades = pl.DataFrame(msgspec.to_builtins(result.trades), schema=BACKTEST_TRADE_SCHEMA)
        curve = result.equity
        equity = pl.DataFrame(
            {"ts": curve.ts, "equity": curve.equity, "position": curve.position}
            if self.job.keep_equity else {},
            schema=BACKTEST_EQUITY_SCHEMA,
        )
        done = self._final(
            "SUCCEEDED", progress=1.0, metrics_json=msgspec.json.encode(result.metrics).decode()
        )
        return self._end(done, trades=trades, equity=equity)

    def _fail(self, error: str) -> AttemptEnd:
        return self._end(self._final("FAILED", error=error))

    def _final(self, status: str, **changes: object) -> BacktestRecord:
        return msgspec.structs.replace(
            self.current, status=status, finished_ns=self.clock(), **changes
        )

    def _end(
        self, record: BacktestRecord, *, trades: pl.DataFrame | None = None,
        equity: pl.DataFrame | None = None,
    ) -> AttemptEnd:
        if not self.store.swap_backtest(self.current, record, trades=trades, equity=equity):
            return self._stopped(self.store.backtest(record.id))
        self.current = record
        self.announce(record)
        return AttemptEnd(outcome="ended", status=record.status)

    def _stopped(self, found: BacktestRecord | None) -> AttemptEnd:
        if found is not None and found.status in ACTIVE and found.attempt > self.attempt:
            log.info("backtest %s attempt %d: superseded by attempt %d; stopped",
                     self.job.id, self.attempt, found.attempt)
            return AttemptEnd(outcome="superseded", detail=f"attempt {found.attempt} holds it")
        status = found.status if found is not None else None
        log.info("backtest %s attempt %d: stopped, the record is %s",
                 self.job.id, self.attempt, status)
        return AttemptEnd(outcome="gone", status=status, detail="stopped")


def _unknown_here(worker: str | None, error: UnknownStrategyError) -> str:
    return (
        f"the worker {worker} has no strategy {error.name!r} (it has {', '.join(error.valid)});"
        " every worker needs the strategy too: the same CANDLEGRAPH_STRATEGY_PATH files, or"
        " the same package installed"
    )


def note_failure(store: AttemptStore, id: str, attempt: int, reason: str) -> None:
    """Write on the record why attempt `attempt` ended without a result (the job goes back to
    the queue); nothing if the record has moved on."""
    found = store.backtest(id)
    if found is None or found.status != "RUNNING" or found.attempt != attempt:
        return
    store.swap_backtest(found, msgspec.structs.replace(found, error=f"attempt {attempt}: {reason}"))


def give_up(
    store: AttemptStore, id: str, attempts: int, reason: str | None, *, now_ns: int,
    announce: Announce, sweep_id: str | None = None, jobs: list[Job] | None = None,
    registry: StrategyRegistry | None = None,
) -> BacktestRecord | None:
    """Mark a run that `attempts` deliveries could not finish FAILED, with `reason` (that of
    the last attempt; `SILENT_END` when it left none). None if it had ended anyway. Jobs to
    queue for its sweep (`strategies.walkforward_record.advance`) are added to `jobs`; for a
    run of a sweep that had ended, those of `resume` (as `not_run` would)."""
    while True:
        found = store.backtest(id)
        if found is None or found.status in TERMINAL:
            if found is not None and sweep_id is not None and jobs is not None:
                jobs.extend(resume(store, sweep_id, now_ns, announce, registry))
            return None
        last = reason
        if last is None and found.error is not None and found.attempt == attempts:
            last = found.error.partition(": ")[2] or found.error
        failed = msgspec.structs.replace(
            found, status="FAILED", finished_ns=now_ns,
            error=f"gave up after {attempts} attempts; the last: {last or SILENT_END}",
        )
        if store.swap_backtest(found, failed):
            announce(failed)
            if sweep_id is not None:
                queued = advance(store, sweep_id, now_ns, announce, registry)
                if jobs is not None:
                    jobs.extend(queued)
            return failed
