"""The backtest service: jobs queued in the web process and run in a pool of worker processes.

A backtest goes QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED. `submit` checks the input
(strategy, params, spec, range, that candles exist), stores the record as QUEUED and returns it
at once; the job waits in this service's queue until one of the pool's `backtest_workers`
processes is free, so a queued job never reaches a worker before its turn. The worker
(`server.backtest_worker`) loads the candles from the store itself, reports `started` and
progress through a multiprocessing queue, stores the trades and the equity curve, and returns
the metrics, which this service stores with the final status.

Choices, and why:
- One writer. This service is the only writer of backtest records (workers write only their
  results), and its writes go through one thread in order, so a late progress update can never
  overwrite a cancellation. Every change wakes the `progress` subscribers of that record.
- Cancelling. A queued job is dropped before it runs. A running one is marked CANCELLED in the
  store at once; its worker sees that at its next check (after each batch of 25,000 bars, a
  second or two of work), stops and stores nothing. Killing the worker instead would stop it
  sooner, but a process pool cannot lose one worker without failing every running job, and a
  fresh worker costs a second of imports.
- Restarts. Records that a previous server left QUEUED or RUNNING are marked FAILED when the
  service starts ("interrupted ... run it again"), and so are the ones still unfinished when it
  shuts down. Resuming them instead could loop forever on a job that kills its server. Finished
  results live in the store and survive restarts. One server process per store runs backtests.
- Sweeps. A sweep has its own record (`kind="sweep"`) and one child record per combination
  (`sweep_id` set), queued like any backtest, so `backtests(sweep_id=...)` lists a sweep's runs
  and each run can be inspected. Runs keep their metrics and trades but not their equity
  curves (one point per bar each). When every run has ended, the sweep stores its ranking
  (`graphql_schema.backtest_service.SweepRanking`) as its `metrics_json`. Its progress is the
  mean of its runs' progress.
- A worker process that dies fails the jobs then running (the pool breaks) and the pool is
  replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import msgspec
import polars as pl

from db.store import BacktestRecord, Store
from graphql_schema.backtest_service import (
    TERMINAL,
    BacktestFilter,
    BacktestRequest,
    FailedRun,
    InvalidInput,
    RankedRun,
    SkippedRun,
    SweepRanking,
    UnknownBacktest,
)
from server import backtest_worker
from server.backtest_worker import Job, Outcome, WorkerEvent
from server.settings import Settings
from strategies.errors import (
    ParameterConflictError,
    ParameterError,
    SpecError,
    UnknownStrategyError,
)
from strategies.registry import StrategyInfo, list_strategies, strategy_info, validate_params
from strategies.result import Metrics
from strategies.spec import BacktestSpec, EquityFraction, FixedQuantity
from strategies.sweep import RANKABLE, SweepRun, parameter_grid, rank_runs, warm_up

log = logging.getLogger(__name__)

#: How often `progress` rereads a record that another server process is running.
POLL_S = 1.0
_SPEC_FIELDS = (
    "starting_balance", "currency", "maker_fee", "taker_fee", "account_type", "leverage",
)
_INTERRUPTED = "interrupted: the server {when} before this {kind} finished; run it again"


@dataclass(eq=False)
class _Tracked:
    """A record this process is running, and the event its subscribers wait on."""

    record: BacktestRecord
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Job(_Tracked):
    job: Job | None = None
    sweep: _Sweep | None = None


@dataclass(eq=False)
class _Sweep(_Tracked):
    rank_by: str = "sharpe"
    runs: list[_Job] = field(default_factory=list)
    skipped: list[SkippedRun] = field(default_factory=list)
    cancelling: bool = False


class BacktestService:
    """Implements `graphql_schema.backtest_service.BacktestService`. `start` it in the app's
    lifespan and `close` it on the way out."""

    def __init__(
        self, store: Store, settings: Settings, *, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self._store = store
        self._settings = settings
        self._workers = settings.backtest_workers
        self._clock = clock
        self._last_created = 0
        self._live: dict[str, _Job | _Sweep] = {}
        self._queue: deque[_Job] = deque()
        self._busy = 0
        self._closing = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backtest-records")
        self._context = multiprocessing.get_context("spawn")
        self._events = self._context.Queue()
        # Ends the event reader: not a sentinel through the queue, whose lock a worker killed
        # while putting an event would hold for ever (the sentinel then never arrives).
        self._events_done = threading.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warming: set[asyncio.Task[None]] = set()

    # Lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Fail the records a previous server left unfinished, then start the pool; its
        workers import the engine in the background (about a second each)."""
        self._loop = asyncio.get_running_loop()
        await self._fail_unfinished()
        self._reader = threading.Thread(
            target=self._read_events, name="backtest-events", daemon=True
        )
        self._reader.start()
        self._pool = self._new_pool()

    async def close(self) -> None:
        """Fail what is unfinished, wait for the workers to notice and stop, then flush."""
        self._closing = True
        now = self._clock()
        writes = []
        for tracked in sorted(self._live.values(), key=lambda t: isinstance(t, _Job)):
            error = _INTERRUPTED.format(when="shut down", kind=tracked.record.kind)
            writes.append(self._finish(tracked, "FAILED", error=error, finished_ns=now))
        await asyncio.gather(*writes, return_exceptions=True)
        if self._pool is not None:
            # No public handle on the workers before Python 3.14 (`terminate_workers`): take them
            # now, so a worker that does not stop within the grace period is killed rather than
            # holding up the shutdown for ever.
            workers = list((self._pool._processes or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(_stop_workers, workers, _SHUTDOWN_GRACE_S)
        self._events_done.set()
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join)
        await asyncio.to_thread(self._writer.shutdown, wait=True)
        self._events.close()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=self._context,
            initializer=backtest_worker.start,
            initargs=(self._settings, self._events),
        )
        warming = asyncio.create_task(asyncio.to_thread(_warm, pool, self._workers))
        warming.add_done_callback(_log_failure("warming the backtest workers"))
        self._warming.add(warming)  # the loop keeps only a weak reference to a task
        warming.add_done_callback(self._warming.discard)
        return pool

    async def _fail_unfinished(self) -> None:
        now = self._clock()
        for status in ("QUEUED", "RUNNING"):
            while True:
                stale = await asyncio.to_thread(self._store.backtests, status=status, limit=500)
                for record in stale:
                    error = _INTERRUPTED.format(when="stopped", kind=record.kind)
                    log.warning("backtest %s was left %s; marking it FAILED", record.id, status)
                    await self._write(msgspec.structs.replace(
                        record, status="FAILED", error=error, finished_ns=now
                    ))
                if len(stale) < 500:
                    break

    # The BacktestService Protocol ----------------------------------------------------------
    def strategies(self) -> Sequence[StrategyInfo]:
        return list_strategies()

    async def submit(self, request: BacktestRequest) -> BacktestRecord:
        spec = _spec(request)
        try:
            params = validate_params(spec.strategy, spec.params)
        except ParameterError as error:
            raise _bad_param(error, f"params.{error.parameter}") from error
        spec = msgspec.structs.replace(spec, params=params)
        await self._check_range(spec, request)
        job = self._job(spec, request, sweep=None)
        await self._write(job.record)
        self._enqueue([job])
        return job.record

    async def submit_sweep(
        self, request: BacktestRequest, grid: Mapping[str, object], rank_by: str
    ) -> BacktestRecord:
        if rank_by not in RANKABLE:
            raise InvalidInput("rank_by", f"expected one of {', '.join(RANKABLE)}, got {rank_by!r}")
        base = _spec(request)
        combinations = _combinations(grid, self._settings.sweep_max_runs)
        specs, skipped = _runs(base, combinations)
        await self._check_range(base, request)
        plan = {**msgspec.to_builtins(base), "grid": dict(grid), "rank_by": rank_by}
        sweep = _Sweep(
            record=self._record(base, request, kind="sweep", spec_json=_json(plan)),
            rank_by=rank_by,
            skipped=skipped,
        )
        self._live[sweep.record.id] = sweep
        sweep.runs = [self._job(spec, request, sweep=sweep) for spec in specs]
        writes = [self._write(sweep.record), *(self._write(run.record) for run in sweep.runs)]
        await asyncio.gather(*writes)
        self._enqueue(sweep.runs)
        return sweep.record

    async def cancel(self, id: str) -> BacktestRecord:
        tracked = self._live.get(id)
        if tracked is None:
            record = await self.get(id)
            if record is None:
                raise UnknownBacktest(id)
            return record
        now = self._clock()
        if isinstance(tracked, _Sweep):
            # Its runs first (without completing the sweep as they end), then the sweep, with
            # the ranking of the runs that had finished.
            tracked.cancelling = True
            writes = [
                self._finish(run, "CANCELLED", finished_ns=now)
                for run in tracked.runs
                if run.record.status not in TERMINAL
            ]
            ranking = self._ranking(tracked)
            writes.append(self._finish(tracked, "CANCELLED", finished_ns=now, metrics_json=ranking))
            await asyncio.gather(*writes)
        else:
            await self._finish(tracked, "CANCELLED", finished_ns=now)
        return tracked.record

    async def get(self, id: str) -> BacktestRecord | None:
        tracked = self._live.get(id)
        if tracked is not None:
            return tracked.record
        return await asyncio.to_thread(self._store.backtest, id)

    async def list(
        self, filter: BacktestFilter, *, limit: int, created_before_ns: int | None = None
    ) -> list[BacktestRecord]:
        hide_runs = filter.sweep_id is None and not filter.include_sweep_runs

        def wanted(record: BacktestRecord) -> bool:
            if filter.kind is not None and record.kind != filter.kind:
                return False
            return not (hide_runs and record.sweep_id is not None)

        # The store filters on everything but kind and "not a sweep's run": read ahead in
        # batches until enough records pass those two.
        filtering = hide_runs or filter.kind is not None
        batch = max(limit * 4, 200) if filtering else limit
        found: list[BacktestRecord] = []
        before = created_before_ns
        while len(found) < limit:
            rows = await asyncio.to_thread(
                self._store.backtests,
                status=filter.status, strategy=filter.strategy, exchange=filter.exchange,
                symbol=filter.symbol, sweep_id=filter.sweep_id, created_before_ns=before,
                limit=batch,
            )
            found.extend(row for row in rows if wanted(row))
            if len(rows) < batch:
                break
            before = rows[-1].created_ns
        return [self._current(record) for record in found[:limit]]

    async def trades(self, id: str, *, offset: int, limit: int) -> pl.DataFrame:
        return await asyncio.to_thread(self._store.backtest_trades, id, offset=offset, limit=limit)

    async def equity(self, id: str) -> pl.DataFrame:
        return await asyncio.to_thread(self._store.backtest_equity, id)

    async def progress(self, id: str) -> AsyncGenerator[BacktestRecord, None]:
        tracked = self._live.get(id)
        if tracked is not None:
            while True:
                # Take the event before yielding: a change made while the subscriber is busy
                # sets it, and the subscriber then gets the latest record, not every step.
                record, changed = tracked.record, tracked.changed
                yield record
                if record.status in TERMINAL:
                    return
                await changed.wait()
        found = await asyncio.to_thread(self._store.backtest, id)
        if found is None:
            raise UnknownBacktest(id)
        # Finished, or run by another server process: follow it in the store.
        last = found
        yield found
        while last.status not in TERMINAL:
            await asyncio.sleep(POLL_S)
            now = await asyncio.to_thread(self._store.backtest, id)
            if now is None:
                return
            if now != last:
                last = now
                yield now

    # Jobs ----------------------------------------------------------------------------------
    def _record(
        self, spec: BacktestSpec, request: BacktestRequest, *, kind: str, spec_json: str,
        sweep_id: str | None = None,
    ) -> BacktestRecord:
        created = max(self._clock(), self._last_created + 1)  # unique, so pages never tie
        self._last_created = created
        return BacktestRecord(
            id=uuid.uuid4().hex,
            kind="sweep" if kind == "sweep" else "backtest",
            status="QUEUED",
            strategy=spec.strategy,
            exchange=spec.exchange,
            symbol=spec.symbol,
            timeframe=spec.timeframe,
            start_ns=request.start_ns,
            end_ns=request.end_ns,
            created_ns=created,
            spec_json=spec_json,
            sweep_id=sweep_id,
        )

    def _job(self, spec: BacktestSpec, request: BacktestRequest, *, sweep: _Sweep | None) -> _Job:
        sweep_id = sweep.record.id if sweep is not None else None
        record = self._record(
            spec, request, kind="backtest", spec_json=_json(spec), sweep_id=sweep_id
        )
        job = _Job(
            record=record,
            job=Job(id=record.id, spec=spec, start_ns=request.start_ns, end_ns=request.end_ns,
                    sweep_id=sweep_id, keep_equity=sweep is None),
            sweep=sweep,
        )
        self._live[record.id] = job
        return job

    def _enqueue(self, jobs: list[_Job]) -> None:
        if self._closing:
            raise RuntimeError("the backtest service is shutting down")
        self._queue.extend(jobs)
        self._pump()

    def _pump(self) -> None:
        """Hand queued jobs to the pool while it has a free worker."""
        while self._queue and self._busy < self._workers and not self._closing:
            tracked = self._queue.popleft()
            if tracked.record.status != "QUEUED" or tracked.job is None:
                continue  # cancelled while it waited
            pool = self._pool
            if pool is None:
                raise RuntimeError("the backtest service was not started")
            self._busy += 1
            future = asyncio.wrap_future(pool.submit(backtest_worker.run, tracked.job))
            future.add_done_callback(partial(self._on_done, tracked, pool))

    def _on_done(self, tracked: _Job, pool: ProcessPoolExecutor, future: asyncio.Future) -> None:
        self._busy -= 1
        if self._closing:
            return
        try:
            outcome: Outcome = future.result()
        except BrokenProcessPool as error:
            outcome = Outcome(status="FAILED", error=f"the worker process died: {error}")
            if pool is self._pool:
                log.error("a backtest worker died; replacing the pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
        except Exception as error:
            log.exception("backtest %s could not run", tracked.record.id)
            outcome = Outcome(status="FAILED", error=f"{type(error).__name__}: {error}")
        if tracked.record.status not in TERMINAL:
            now = self._clock()
            changes: dict[str, object] = {"finished_ns": now, "error": outcome.error}
            if tracked.record.started_ns is None:
                changes["started_ns"] = now
            if outcome.status == "SUCCEEDED":
                changes.update(progress=1.0, metrics_json=outcome.metrics_json)
            self._finish(tracked, outcome.status, **changes)
        self._pump()

    def _on_event(self, event: WorkerEvent) -> None:
        tracked = self._live.get(event.id)
        if not isinstance(tracked, _Job) or tracked.record.status in TERMINAL:
            return
        if event.kind == "started" and tracked.record.status == "QUEUED":
            self._update(tracked, status="RUNNING", started_ns=self._clock(), progress=0.0)
        elif event.kind == "progress" and event.progress != tracked.record.progress:
            self._update(tracked, progress=event.progress)
        if tracked.sweep is not None:
            self._sweep_changed(tracked.sweep)

    def _read_events(self) -> None:
        # Worker events arrive on a multiprocessing queue; hand each to the event loop.
        loop = self._loop
        assert loop is not None
        while True:
            try:
                event = self._events.get(timeout=_EVENT_POLL_S)
            except queue.Empty:
                if self._events_done.is_set():  # the workers have stopped: nothing is coming
                    return
                continue
            try:
                loop.call_soon_threadsafe(self._on_event, event)
            except RuntimeError:  # the loop has closed
                return

    # Sweeps --------------------------------------------------------------------------------
    def _sweep_changed(self, sweep: _Sweep) -> None:
        if sweep.record.status in TERMINAL or sweep.cancelling:
            return
        runs = sweep.runs
        if all(run.record.status in TERMINAL for run in runs):
            ranking = self._ranking(sweep)
            succeeded = [run for run in runs if run.record.status == "SUCCEEDED"]
            now = self._clock()
            if succeeded:
                self._finish(sweep, "SUCCEEDED", progress=1.0, finished_ns=now,
                             metrics_json=ranking)
            else:
                first = runs[0].record.error
                self._finish(sweep, "FAILED", finished_ns=now, metrics_json=ranking,
                             error=f"every run failed; the first: {first}")
            return
        done = sum(1.0 if r.record.status in TERMINAL else r.record.progress for r in runs)
        changes: dict[str, object] = {}
        if sweep.record.status == "QUEUED":
            changes.update(status="RUNNING", started_ns=self._clock())
        progress = done / len(runs)
        if progress != sweep.record.progress:
            changes["progress"] = progress
        if changes:
            self._update(sweep, **changes)

    def _ranking(self, sweep: _Sweep) -> str:
        finished: list[tuple[_Job, SweepRun]] = []
        failed: list[FailedRun] = []
        for run in sweep.runs:
            record = run.record
            params = run.job.spec.params if run.job is not None else {}
            if record.status == "SUCCEEDED" and record.metrics_json is not None:
                metrics = msgspec.json.decode(record.metrics_json, type=Metrics)
                elapsed = ((record.finished_ns or 0) - (record.started_ns or 0)) / 1e9
                finished.append((run, SweepRun(params=params, metrics=metrics, elapsed_s=elapsed)))
            elif record.status in TERMINAL:
                failed.append(
                    FailedRun(id=record.id, params=params, status=record.status, error=record.error)
                )
        by_run = {id(result): run for run, result in finished}
        ranked = [
            RankedRun(
                id=by_run[id(result)].record.id,
                params=result.params,
                metrics=msgspec.to_builtins(result.metrics),
            )
            for result in rank_runs([result for _, result in finished], sweep.rank_by)
        ]
        return _json(SweepRanking(
            rank_by=sweep.rank_by, runs=ranked, failed=failed, skipped=sweep.skipped
        ))

    # Records -------------------------------------------------------------------------------
    def _update(self, tracked: _Tracked, **changes: object) -> asyncio.Future[None]:
        """Change a live record: wake its subscribers and queue its write."""
        tracked.record = msgspec.structs.replace(tracked.record, **changes)
        woken, tracked.changed = tracked.changed, asyncio.Event()
        woken.set()
        return self._write(tracked.record)

    def _finish(self, tracked: _Tracked, status: str, **changes: object) -> asyncio.Future[None]:
        write = self._update(tracked, status=status, **changes)
        self._live.pop(tracked.record.id, None)
        if isinstance(tracked, _Job) and tracked.sweep is not None:
            self._sweep_changed(tracked.sweep)
        return write

    def _write(self, record: BacktestRecord) -> asyncio.Future[None]:
        # One writer thread: writes land in the order they were made.
        written: Future[None] = self._writer.submit(self._store.put_backtest, record)
        written.add_done_callback(_log_failure(f"storing backtest {record.id}"))
        return asyncio.wrap_future(written)

    def _current(self, record: BacktestRecord) -> BacktestRecord:
        tracked = self._live.get(record.id)
        return tracked.record if tracked is not None else record

    async def _check_range(self, spec: BacktestSpec, request: BacktestRequest) -> None:
        if request.end_ns <= request.start_ns:
            raise InvalidInput("end", "expected a time after start")
        found = await asyncio.to_thread(
            self._store.candles, spec.exchange, spec.symbol, spec.timeframe,
            start_ns=request.start_ns, end_ns=request.end_ns, limit=1,
        )
        if not found:
            raise InvalidInput(
                "range",
                f"no {spec.timeframe} candles of {spec.exchange} {spec.symbol} are stored from"
                f" {_iso(request.start_ns)} to {_iso(request.end_ns)}",
            )


def _spec(request: BacktestRequest) -> BacktestSpec:
    """The spec a request describes, its fields checked (its params are checked apart)."""
    try:
        strategy_info(request.strategy)
    except UnknownStrategyError as error:
        raise InvalidInput("strategy", str(error)) from error
    if not isinstance(request.params, Mapping):
        got = request.params
        raise InvalidInput("params", f"expected an object of parameter values, got {got!r}")
    fields = {name: getattr(request, name) for name in _SPEC_FIELDS}
    fields = {name: value for name, value in fields.items() if value is not None}
    if request.quantity is not None and request.fraction is not None:
        raise InvalidInput("sizing", "expected quantity or fraction, not both")
    if request.quantity is not None:
        fields["sizing"] = FixedQuantity(request.quantity)
    elif request.fraction is not None:
        fields["sizing"] = EquityFraction(request.fraction)
    try:
        return BacktestSpec(
            exchange=request.exchange,
            symbol=request.symbol,
            timeframe=request.timeframe,
            strategy=request.strategy,
            params=dict(request.params),  # type: ignore[arg-type]  # checked by validate_params
            **fields,
        )
    except SpecError as error:
        raise InvalidInput(error.field, f"expected {error.expected}, got {error.got!r}") from error


def _combinations(grid: object, cap: int) -> list[dict[str, object]]:
    if not isinstance(grid, Mapping) or not grid:
        expected = "an object mapping parameter names to lists of values"
        raise InvalidInput("grid", f"expected {expected}, got {grid!r}")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            expected = "a non-empty list of values"
            raise InvalidInput(f"grid.{name}", f"expected {expected}, got {values!r}")
    count = math.prod(len(values) for values in grid.values())
    if count > cap:
        raise InvalidInput("grid", f"expected at most {cap} combinations, got {count}")
    try:
        return parameter_grid(grid)  # type: ignore[arg-type]  # values checked by validate_params
    except SpecError as error:
        raise InvalidInput(error.field, f"expected {error.expected}, got {error.got!r}") from error


def _runs(
    base: BacktestSpec, combinations: list[dict[str, object]]
) -> tuple[list[BacktestSpec], list[SkippedRun]]:
    """One spec per combination the strategy accepts; the ones it refuses together (fast >=
    slow) are skipped with the reason, as `strategies.sweep.run_sweep` does."""
    specs: list[BacktestSpec] = []
    skipped: list[SkippedRun] = []
    for overrides in combinations:
        params = {**base.params, **overrides}
        try:
            checked = validate_params(base.strategy, params)
        except ParameterConflictError as error:
            skipped.append(SkippedRun(params=params, reason=str(error)))  # type: ignore[arg-type]
            continue
        except ParameterError as error:
            where = "grid" if error.parameter in overrides else "params"
            raise _bad_param(error, f"{where}.{error.parameter}") from error
        specs.append(msgspec.structs.replace(base, params=checked))
    if not specs:
        raise InvalidInput("grid", f"the strategy refuses every combination: {skipped[0].reason}")
    return specs, skipped


def _bad_param(error: ParameterError, field: str) -> InvalidInput:
    return InvalidInput(field, f"expected {error.expected}, got {error.got!r}")


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _warm(pool: ProcessPoolExecutor, workers: int) -> None:
    with contextlib.suppress(RuntimeError):  # the pool was shut down while warming
        warm_up(pool, workers)


def _log_failure(what: str) -> Callable[[Future | asyncio.Future], None]:
    def check(done: Future | asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("%s failed", what, exc_info=done.exception())

    return check


#: How long `close` lets workers finish their batch before it kills them.
_SHUTDOWN_GRACE_S = 5.0
#: How often the event reader looks up from an empty queue to see whether it should stop.
_EVENT_POLL_S = 0.2


def _stop_workers(workers: list[multiprocessing.process.BaseProcess], grace_s: float) -> None:
    """Join the worker processes; kill those still running after `grace_s` seconds."""
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        if worker.is_alive():
            log.warning(
                "backtest worker %s did not stop in %.0f s; killing it", worker.pid, grace_s
            )
            worker.kill()
            worker.join(5.0)
