"""The backtest service every GraphQL server runs: queue, cancel, list and follow backtests.

It holds no state of its own: records live in the store and jobs in the queue
(`strategies.jobs.JobQueue`), so any number of servers can serve the same backtests.

- `submit` checks the request (`strategies.request`), stores the record as QUEUED, queues its
  job and returns at once. `submit_sweep` plans the sweep (`strategies.sweep`), stores the
  sweep's record and one per run (`sweep_id` set), and queues one job per run; the workers
  rank it when its last run ends (`strategies.sweep_record`). If the queue cannot take the
  jobs, the records are marked FAILED and the error is raised.
- `cancel` marks a queued or running record CANCELLED in the store (a sweep: its unfinished
  runs first, then the sweep with the ranking of the runs that had ended) and announces it. A
  queued job is then skipped when a worker pulls it; a running one stops at its next batch of
  bars, when its worker's write of the progress fails (`strategies.attempt`).
- `progress` follows a record through the queue's announcements, from whatever server made
  the change. It subscribes before it reads the store, so no change is missed, keeps only the
  latest state for a slow reader, and reads the store again only when nothing has been heard
  for `quiet_s` (a lost announcement cannot leave it waiting for ever) and for the final record.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from typing import Literal, Protocol

import msgspec
import polars as pl

from db.backtest_store import BacktestRecord, BacktestStore
from db.candle_store import CandleStore
from strategies.errors import UnknownBacktest
from strategies.jobs import ACTIVE, TERMINAL, Job, JobQueue, newer
from strategies.registry import StrategyInfo, StrategyRegistry, builtin_registry
from strategies.request import (
    BacktestRequest,
    base_spec,
    check_range,
    check_request,
    check_stored,
)
from strategies.spec import BacktestSpec
from strategies.sweep import plan_json, plan_sweep
from strategies.sweep_record import advance_sweep, ranking_of

#: How long `progress` waits without news before it reads the store again.
QUIET_S = 30.0


class ServiceStore(BacktestStore, CandleStore, Protocol):
    """The parts of the store the service uses: records and results, and a candle look-up."""


class BacktestFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which records to list. Without `sweep_id`, a sweep's own runs are left out unless
    `include_sweep_runs`; with it, only that sweep's runs are listed."""

    status: str | None = None
    kind: Literal["backtest", "sweep"] | None = None
    strategy: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    sweep_id: str | None = None
    include_sweep_runs: bool = False


class BacktestService:
    """See the module docstring. `timeframes` are the ones the store holds; a sweep may ask
    for at most `sweep_max_runs` combinations; `registry` holds the strategies (the built-ins
    by default)."""

    def __init__(
        self,
        store: ServiceStore,
        queue: JobQueue,
        *,
        timeframes: Collection[str],
        sweep_max_runs: int,
        clock: Callable[[], int] = time.time_ns,
        quiet_s: float = QUIET_S,
        registry: StrategyRegistry | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._timeframes = tuple(timeframes)
        self._sweep_max_runs = sweep_max_runs
        self._clock = clock
        self._quiet_s = quiet_s
        self._last_created = 0
        self._registry = registry or builtin_registry()

    def strategies(self) -> Sequence[StrategyInfo]:
        """Every strategy, sorted by name."""
        return self._registry.strategies()

    async def submit(self, request: BacktestRequest) -> BacktestRecord:
        """Queue a backtest and return its record (QUEUED) at once. Raises `InvalidRequest`
        for an unknown strategy, a bad parameter or spec field, an empty range or a range with
        no stored candles."""
        spec = check_request(request, timeframes=self._timeframes, registry=self._registry)
        record = self._record(spec, request, kind="backtest", spec_json=_json(spec))
        job = Job(id=record.id, spec=spec, start_ns=request.start_ns, end_ns=request.end_ns)
        # One trip to a thread for both: each costs more than the small read and write.
        await asyncio.to_thread(self._check_and_put, spec, request, [record])
        await self._enqueue([job], [record])
        return record

    async def submit_sweep(
        self, request: BacktestRequest, grid: object, rank_by: str
    ) -> BacktestRecord:
        """Queue one run per combination of `grid` (each overriding `request.params`), to be
        ranked by `rank_by`; return the sweep's record at once. Raises `InvalidRequest` as
        `submit` does, and for an empty or oversized grid or an unknown `rank_by`."""
        base = base_spec(request, timeframes=self._timeframes, registry=self._registry)
        plan = plan_sweep(
            base, grid, rank_by, max_runs=self._sweep_max_runs, registry=self._registry
        )
        check_range(request)
        sweep = self._record(base, request, kind="sweep", spec_json=plan_json(plan))
        runs = [
            self._record(spec, request, kind="backtest", spec_json=_json(spec), sweep_id=sweep.id)
            for spec in plan.runs
        ]
        jobs = [
            Job(id=run.id, spec=spec, start_ns=request.start_ns, end_ns=request.end_ns,
                sweep_id=sweep.id, keep_equity=False)
            for run, spec in zip(runs, plan.runs, strict=True)
        ]
        await asyncio.to_thread(self._check_and_put, base, request, [sweep, *runs])
        await self._enqueue(jobs, [sweep, *runs])
        return sweep

    async def cancel(self, id: str) -> BacktestRecord:
        """Cancel a queued or running backtest or sweep; a finished one is returned unchanged.
        Raises `UnknownBacktest`."""
        cancelled = await asyncio.to_thread(self._cancel, id)
        for record in cancelled.announced:
            await self._queue.announce(record)
        return cancelled.record

    async def get(self, id: str) -> BacktestRecord | None:
        return await asyncio.to_thread(self._store.backtest, id)

    async def list(
        self, filter: BacktestFilter, *, limit: int, created_before_ns: int | None = None
    ) -> list[BacktestRecord]:
        """Records matching `filter`, newest first; `created_ns` is unique, so it pages."""
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
        return found[:limit]

    async def trades(self, id: str, *, offset: int, limit: int) -> pl.DataFrame:
        """A page of one run's trades, ordered by exit then position id."""
        return await asyncio.to_thread(self._store.backtest_trades, id, offset=offset, limit=limit)

    async def equity(self, id: str) -> pl.DataFrame:
        """One run's equity curve, oldest first (empty when none is stored)."""
        return await asyncio.to_thread(self._store.backtest_equity, id)

    async def progress(self, id: str) -> AsyncGenerator[BacktestRecord, None]:
        """The record now, then after every change of status or progress, ending with the
        terminal one. Raises `UnknownBacktest` before yielding anything."""
        async with self._queue.follow(id) as changes:
            record = await self.get(id)
            if record is None:
                raise UnknownBacktest(id)
            yield record
            while record.status not in TERMINAL:
                heard = await changes.next(self._quiet_s)
                if not heard:
                    stored = await self.get(id)
                    heard = [stored] if stored is not None else []
                latest = record
                for change in heard:
                    latest = newer(latest, change)
                if latest.status in TERMINAL:
                    # Announcements leave the result out: the store has it.
                    stored = await self.get(id)
                    if stored is not None and stored.status in TERMINAL:
                        latest = stored
                if latest != record:
                    record = latest
                    yield record

    # Records -------------------------------------------------------------------------------
    def _record(
        self, spec: BacktestSpec, request: BacktestRequest, *, kind: Literal["backtest", "sweep"],
        spec_json: str, sweep_id: str | None = None,
    ) -> BacktestRecord:
        created = max(self._clock(), self._last_created + 1)  # unique, so pages never tie
        self._last_created = created
        return BacktestRecord(
            id=uuid.uuid4().hex, kind=kind, status="QUEUED", strategy=spec.strategy,
            exchange=spec.exchange, symbol=spec.symbol, timeframe=spec.timeframe,
            start_ns=request.start_ns, end_ns=request.end_ns, created_ns=created,
            spec_json=spec_json, sweep_id=sweep_id,
        )

    def _check_and_put(
        self, spec: BacktestSpec, request: BacktestRequest, records: Sequence[BacktestRecord]
    ) -> None:
        check_stored(self._store, spec, request)
        self._put_all(records)

    def _put_all(self, records: Sequence[BacktestRecord]) -> None:
        for record in records:
            self._store.put_backtest(record)

    async def _enqueue(self, jobs: Sequence[Job], records: Sequence[BacktestRecord]) -> None:
        try:
            await self._queue.enqueue(jobs)
        except BaseException as error:
            now = self._clock()
            reason = f"could not be queued: {type(error).__name__}: {error}"
            await asyncio.to_thread(self._put_all, [
                msgspec.structs.replace(record, status="FAILED", error=reason, finished_ns=now)
                for record in records
            ])
            raise

    def _cancel(self, id: str) -> _Cancelled:
        found = self._store.backtest(id)
        if found is None:
            raise UnknownBacktest(id)
        announced: list[BacktestRecord] = []
        if found.kind == "sweep" and found.status in ACTIVE:
            for run in self._store.backtests(sweep_id=id, limit=_MAX_RUNS):
                if (ended := self._cancel_one(run)) is not None:
                    announced.append(ended)
            sweep = self._cancel_sweep(id)
            if sweep is not None:
                announced.append(sweep)
        elif (ended := self._cancel_one(found)) is not None:
            announced.append(ended)
        if found.sweep_id is not None:
            # A run cancelled alone: its sweep may have ended with it.
            advance_sweep(
                self._store, found.sweep_id, self._clock(), announced.append, self._registry
            )
        current = self._store.backtest(id)
        assert current is not None
        return _Cancelled(record=current, announced=announced)

    def _cancel_one(self, record: BacktestRecord | None) -> BacktestRecord | None:
        while record is not None and record.status in ACTIVE:
            cancelled = msgspec.structs.replace(
                record, status="CANCELLED", finished_ns=self._clock()
            )
            if self._store.swap_backtest(record, cancelled):
                return cancelled
            record = self._store.backtest(record.id)
        return None

    def _cancel_sweep(self, id: str) -> BacktestRecord | None:
        while True:
            sweep = self._store.backtest(id)
            if sweep is None or sweep.status not in ACTIVE:
                return None
            runs = self._store.backtests(sweep_id=id, limit=_MAX_RUNS)
            ranking = ranking_of(sweep, runs, self._registry)
            cancelled = msgspec.structs.replace(
                sweep, status="CANCELLED", finished_ns=self._clock(),
                metrics_json=msgspec.json.encode(ranking).decode(),
            )
            if self._store.swap_backtest(sweep, cancelled):
                return cancelled


class _Cancelled(msgspec.Struct, frozen=True, kw_only=True):
    record: BacktestRecord
    announced: list[BacktestRecord]


#: More runs than any sweep can have: reading a sweep's runs reads them all.
_MAX_RUNS = 1_000_000


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()
