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
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from typing import Literal, Protocol

import msgspec
import polars as pl

from db.backtest_store import BacktestRecord, BacktestStore
from db.candle_store import CandleStore
from market.arrays import Ints
from strategies.errors import InvalidRequest, UnknownBacktest
from strategies.folds import plan_folds
from strategies.jobs import ACTIVE, TERMINAL, Job, JobQueue, new_record, newer
from strategies.registry import StrategyInfo, StrategyRegistry, builtin_registry
from strategies.request import (
    BacktestRequest,
    base_spec,
    check_range,
    check_request,
    check_stored,
)
from strategies.search import METHODS, Search, build_search
from strategies.spec import BacktestSpec
from strategies.sweep import (
    RANKABLE,
    SweepRanking,
    plan_json,
    plan_sweep,
    read_sweep,
    search_batch,
    search_json,
)
from strategies.sweep_record import ranking_of
from strategies.walkforward import StoredWalkForward, fold_windows, stored_json
from strategies.walkforward_record import advance

RecordKind = Literal["backtest", "sweep", "walkforward"]


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """How a sweep or a walk-forward's folds search: GRID (the grid, every combination), or
    RANDOM or TPE (`strategies.search`): `trials` in batches of `batch`, from `seed` (a random
    one, stored with the sweep, when None), over `space` or the strategy's bounds."""

    method: str = "GRID"
    trials: int | None = None
    seed: int | None = None
    batch: int | None = None
    space: object | None = None


class WalkForwardRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A walk-forward's own arguments (`strategies.folds.plan_folds`); `grid` and `search` as
    for a sweep, run on every fold's training window."""

    folds: int
    rank_by: str = "sharpe"
    grid: object | None = None
    search: SearchRequest | None = None
    train_bars: int | None = None
    train_fraction: float | None = None
    test_bars: int | None = None
    anchored: bool = False

#: How long `progress` waits without news before it reads the store again.
QUIET_S = 30.0


class ServiceStore(BacktestStore, CandleStore, Protocol):
    """The parts of the store the service uses: records and results, and a candle look-up."""


class BacktestFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which records to list. Without `sweep_id`, a sweep's own runs are left out unless
    `include_sweep_runs`; with it, only that sweep's runs are listed."""

    status: str | None = None
    kind: RecordKind | None = None
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
        self, request: BacktestRequest, grid: object, rank_by: str,
        search: SearchRequest | None = None,
    ) -> BacktestRecord:
        """Queue a sweep ranked by `rank_by`: one run per combination of `grid` (each
        overriding `request.params`), or with a RANDOM or TPE `search`, its first batch of
        trials (the workers ask the next ones, `strategies.sweep_record`); return the sweep's
        record at once. Raises `InvalidRequest` as `submit` does, and for an empty or oversized
        grid, a bad search or an unknown `rank_by`."""
        base = base_spec(request, timeframes=self._timeframes, registry=self._registry)
        check_range(request)
        sweep, runs, jobs = self._plan_sweep(
            base, request.start_ns, request.end_ns, grid, rank_by, search
        )
        await asyncio.to_thread(self._check_and_put, base, request, [sweep, *runs])
        await self._enqueue(jobs, [sweep, *runs])
        return sweep

    async def submit_walkforward(
        self, request: BacktestRequest, walk: WalkForwardRequest
    ) -> BacktestRecord:
        """Queue a walk-forward (`strategies.walkforward`): every fold's in-sample sweep at
        once; each fold's out-of-sample run is queued when its sweep ends. Raises
        `InvalidRequest` as `submit_sweep` does, and for folds that do not fit the candles."""
        base = base_spec(request, timeframes=self._timeframes, registry=self._registry)
        check_range(request)
        if walk.rank_by not in RANKABLE:
            raise InvalidRequest(
                "rank_by", f"expected one of {', '.join(RANKABLE)}, got {walk.rank_by!r}"
            )
        ts = await asyncio.to_thread(self._candle_times, base, request)
        folds = plan_folds(
            len(ts), folds=walk.folds, train_bars=walk.train_bars,
            train_fraction=walk.train_fraction, test_bars=walk.test_bars, anchored=walk.anchored,
        )
        windows = fold_windows(ts, base.timeframe_ns, folds)
        parent = self._record(base, request, kind="walkforward", spec_json="{}")
        records: list[BacktestRecord] = []
        jobs: list[Job] = []
        search: Search | None = None
        asked = walk.search
        if asked is not None and asked.seed is None:
            # One seed for every fold, stored: the walk-forward can be repeated.
            asked = msgspec.structs.replace(asked, seed=secrets.randbits(31))
        for window in windows:
            sweep, runs, fold_jobs = self._plan_sweep(
                base, window.train_start_ns, window.train_end_ns, walk.grid, walk.rank_by,
                asked, fold=window.index, parent=parent.id,
            )
            search = read_sweep(sweep.spec_json).search
            records += [sweep, *runs]
            jobs += fold_jobs
        stored = StoredWalkForward(
            base=base, rank_by=walk.rank_by, grid=walk.grid if search is None else None,  # type: ignore[arg-type]
            search=search, anchored=walk.anchored, folds=windows,
        )
        parent = msgspec.structs.replace(parent, spec_json=stored_json(stored))
        await asyncio.to_thread(self._put_all, [parent, *records])
        await self._enqueue(jobs, [parent, *records])
        return parent

    def _plan_sweep(
        self, base: BacktestSpec, start_ns: int, end_ns: int, grid: object, rank_by: str,
        search: SearchRequest | None, *, fold: int | None = None, parent: str | None = None,
    ) -> tuple[BacktestRecord, list[BacktestRecord], list[Job]]:
        method = search.method if search is not None else "GRID"
        if method not in METHODS:
            raise InvalidRequest("search.method", f"expected GRID, RANDOM or TPE, got {method!r}")
        if method == "GRID" or search is None:
            if search is not None and search.trials is not None:
                raise InvalidRequest(
                    "search.trials", "GRID runs every combination of grid: leave trials out"
                )
            if grid is None:
                raise InvalidRequest("grid", "expected a grid for a GRID search")
            plan = plan_sweep(
                base, grid, rank_by, max_runs=self._sweep_max_runs, registry=self._registry
            )
            specs = plan.runs
            spec_json = plan_json(plan, fold=fold)
            asked = None
        else:
            if rank_by not in RANKABLE:
                raise InvalidRequest(
                    "rank_by", f"expected one of {', '.join(RANKABLE)}, got {rank_by!r}"
                )
            if search.trials is None:
                raise InvalidRequest("search.trials", f"expected a number of trials for {method}")
            seed = search.seed if search.seed is not None else secrets.randbits(31)
            chosen = build_search(
                base.strategy, base.params, method=method, trials=search.trials, seed=seed,
                batch=search.batch, space=search.space, grid=grid,
                max_trials=self._sweep_max_runs, registry=self._registry,
            )
            specs = search_batch(
                base, chosen, rank_by, [], min(chosen.batch, chosen.trials), self._registry
            )
            if not specs:
                raise InvalidRequest("search.space", "the strategy refuses every trial asked")
            spec_json = search_json(base, chosen, rank_by, fold=fold)
            asked = len(specs)
        sweep = self._window_record(base, start_ns, end_ns, kind="sweep", spec_json=spec_json,
                                    sweep_id=parent)
        if asked is not None:
            ranking = SweepRanking(rank_by=rank_by, runs=[], asked=asked)
            sweep = msgspec.structs.replace(sweep, metrics_json=_json(ranking))
        runs = [
            self._window_record(spec, start_ns, end_ns, kind="backtest", spec_json=_json(spec),
                                sweep_id=sweep.id)
            for spec in specs
        ]
        jobs = [
            Job(id=run.id, spec=spec, start_ns=start_ns, end_ns=end_ns, sweep_id=sweep.id,
                keep_equity=False)
            for run, spec in zip(runs, specs, strict=True)
        ]
        return sweep, runs, jobs

    def _candle_times(self, spec: BacktestSpec, request: BacktestRequest) -> Ints:
        check_stored(self._store, spec, request)
        frame = self._store.candles_frame(
            spec.exchange, spec.symbol, spec.timeframe, request.start_ns, request.end_ns,
            columns=["close"],
        )
        return frame["ts"].to_numpy()

    async def cancel(self, id: str) -> BacktestRecord:
        """Cancel a queued or running backtest or sweep; a finished one is returned unchanged.
        Raises `UnknownBacktest`."""
        cancelled = await asyncio.to_thread(self._cancel, id)
        for record in cancelled.announced:
            await self._queue.announce(record)
        if cancelled.jobs:
            await self._queue.enqueue(cancelled.jobs)
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
        self, spec: BacktestSpec, request: BacktestRequest, *, kind: RecordKind,
        spec_json: str, sweep_id: str | None = None,
    ) -> BacktestRecord:
        return self._window_record(spec, request.start_ns, request.end_ns, kind=kind,
                                   spec_json=spec_json, sweep_id=sweep_id)

    def _window_record(
        self, spec: BacktestSpec, start_ns: int, end_ns: int, *, kind: RecordKind,
        spec_json: str, sweep_id: str | None = None,
    ) -> BacktestRecord:
        created = max(self._clock(), self._last_created + 1)  # unique, so pages never tie
        self._last_created = created
        return new_record(spec, kind=kind, start_ns=start_ns, end_ns=end_ns,
                          created_ns=created, spec_json=spec_json, sweep_id=sweep_id)

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
        jobs: list[Job] = []
        if found.kind == "walkforward" and found.status in ACTIVE:
            # The walk-forward first, so no fold's ending queues its test run.
            if (ended := self._cancel_one(found)) is not None:
                announced.append(ended)
            for child in self._store.backtests(sweep_id=id, limit=_MAX_RUNS):
                if child.kind == "sweep":
                    announced += self._cancel_sweep_and_runs(child.id)
                elif (ended := self._cancel_one(child)) is not None:
                    announced.append(ended)
        elif found.kind == "sweep" and found.status in ACTIVE:
            announced += self._cancel_sweep_and_runs(id)
        elif (ended := self._cancel_one(found)) is not None:
            announced.append(ended)
        if found.sweep_id is not None:
            # A run or a fold cancelled alone: its sweep or walk-forward may move on with it.
            jobs = advance(
                self._store, found.sweep_id, self._clock(), announced.append, self._registry
            )
        current = self._store.backtest(id)
        assert current is not None
        return _Cancelled(record=current, announced=announced, jobs=jobs)

    def _cancel_sweep_and_runs(self, id: str) -> Sequence[BacktestRecord]:
        announced = []
        for run in self._store.backtests(sweep_id=id, limit=_MAX_RUNS):
            if (ended := self._cancel_one(run)) is not None:
                announced.append(ended)
        sweep = self._cancel_sweep(id)
        if sweep is not None:
            announced.append(sweep)
        return announced

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
    jobs: list[Job]


#: More runs than any sweep can have: reading a sweep's runs reads them all.
_MAX_RUNS = 1_000_000


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()
