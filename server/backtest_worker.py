"""What a backtest worker process runs: load candles from the store, run, store the results.

Workers are the spawned processes of the pool that `server.backtests.BacktestService` owns.
Importing this module loads the engine (about a second); `start` runs once in each worker as
it starts and opens the worker's own store from the settings, so candles never travel through
a pipe. `run` executes one `Job` and returns an `Outcome`; it never raises, because an
exception crossing the process boundary must unpickle in the web process, and ours take
constructor arguments that do not.

A worker talks to the web process through one multiprocessing queue of `WorkerEvent`s:
`started` as a job begins, `progress` after each batch of bars. It stops a job early when the
job's record in the store no longer says QUEUED or RUNNING: the service is the only writer of
records and marks a job CANCELLED there (or FAILED when it shuts down). That check runs at the
start, after every batch of bars (`strategies.runner.BATCH_BARS`, a second or two of work) and
before the results are written, so a cancelled run stops within one batch and stores nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import Literal, NamedTuple

import msgspec
import polars as pl

from db.store import BACKTEST_EQUITY_SCHEMA, BACKTEST_TRADE_SCHEMA, Store
from server.settings import Settings
from server.stores import open_store
from strategies.errors import BacktestInputError
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec

log = logging.getLogger(__name__)

_ACTIVE = frozenset({"QUEUED", "RUNNING"})


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One run for a worker. `keep_equity` is False for a sweep's runs: a curve holds one point
    per bar, and a sweep of hundreds would store hundreds of them."""

    id: str
    spec: BacktestSpec
    start_ns: int
    end_ns: int
    sweep_id: str | None = None
    keep_equity: bool = True


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a job ended. `metrics_json` is the runner's `Metrics` as JSON when it succeeded."""

    status: Literal["SUCCEEDED", "FAILED", "CANCELLED"]
    metrics_json: str | None = None
    error: str | None = None


class WorkerEvent(NamedTuple):
    id: str
    kind: Literal["started", "progress"]
    progress: float


class Cancelled(Exception):
    """The job's record says it should no longer run."""


class _Worker:
    """The state of one worker process: its store, its event queue and the candles of the
    sweep it last worked on (every run of a sweep reads the same range)."""

    def __init__(self, store: Store, events: Queue[WorkerEvent]) -> None:
        self.store = store
        self.events = events
        self._frame_key: tuple[object, ...] | None = None
        self._frame: pl.DataFrame | None = None

    def run(self, job: Job) -> Outcome:
        try:
            self.events.put(WorkerEvent(job.id, "started", 0.0))
            self._check(job.id)
            result = run_backtest(self._candles(job), job.spec, on_progress=self._reporter(job))
            trades = pl.DataFrame(msgspec.to_builtins(result.trades), schema=BACKTEST_TRADE_SCHEMA)
            equity = pl.DataFrame(
                {"ts": result.equity.ts, "equity": result.equity.equity,
                 "position": result.equity.position} if job.keep_equity else {},
                schema=BACKTEST_EQUITY_SCHEMA,
            )
            self._check(job.id)
            self.store.put_backtest_results(job.id, trades, equity)
            metrics = msgspec.json.encode(result.metrics).decode()
            return Outcome(status="SUCCEEDED", metrics_json=metrics)
        except Cancelled:
            return Outcome(status="CANCELLED", error="cancelled while running")
        except BacktestInputError as error:
            return Outcome(status="FAILED", error=str(error))
        except Exception as error:
            log.exception("backtest %s failed", job.id)
            return Outcome(status="FAILED", error=f"{type(error).__name__}: {error}")

    def _reporter(self, job: Job) -> Callable[[float], None]:
        def report(fraction: float) -> None:
            self.events.put(WorkerEvent(job.id, "progress", fraction))
            self._check(job.id)

        return report

    def _check(self, id: str) -> None:
        record = self.store.backtest(id)
        if record is not None and record.status not in _ACTIVE:
            raise Cancelled(id)

    def _candles(self, job: Job) -> pl.DataFrame:
        spec = job.spec
        key = (job.sweep_id, spec.exchange, spec.symbol, spec.timeframe, job.start_ns, job.end_ns)
        if job.sweep_id is not None and key == self._frame_key and self._frame is not None:
            return self._frame
        frame = self.store.candles_frame(
            spec.exchange, spec.symbol, spec.timeframe, job.start_ns, job.end_ns
        )
        self._frame_key, self._frame = key, frame
        return frame


# One per worker process, set by `start`: the pool calls module-level functions, so the
# process's state has to live at module level.
_worker: _Worker | None = None


def start(settings: Settings, events: Queue[WorkerEvent]) -> None:
    """The pool's initializer (importing this module has loaded the engine): open this
    process's store."""
    global _worker
    _worker = _Worker(open_store(settings), events)


def run(job: Job) -> Outcome:
    """Run one job in this worker process (the function the service submits to the pool)."""
    if _worker is None:
        raise RuntimeError("backtest worker used before start(): create the pool with it")
    return _worker.run(job)
