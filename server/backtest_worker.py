"""`candlegraph worker`: pull backtest jobs from JetStream and run them in worker processes.

A worker runs on any machine that reaches NATS and the store. It has `concurrency` slots
(`server.backtest_slots`), each a process, and pulls one job from the `workers` consumer
(`server.backtest_queue`) whenever a slot is free, so queued jobs spread over every worker.
For each job:

- the delivery count is the attempt; a job delivered more than `max_attempts` times is marked
  FAILED with the reason of its last attempt, and acked;
- the worker claims the run's record under that attempt (`strategies.attempt.claim`) and
  announces it RUNNING, then hands the job to a free slot's process;
- while the job runs, the worker sends an in-progress ack every third of the ack wait, so the
  job is not delivered again; a worker that dies (even by SIGKILL) stops sending them, and the
  job goes to another worker after the ack wait, where it runs from the start;
- each record change the slot stores is announced on NATS (`backtests.events.<id>`);
- when the attempt ends, the jobs it asked for are queued (a search's next batch, a fold's
  out-of-sample run), then the job is acked, unless a later attempt owns it (this worker was
  presumed dead and its delivery is stale: acking it would ack the later one's), or the store
  failed (the job is handed back after a pause);
- a slot whose process dies hands the job back with the reason written on the record, or,
  after the last attempt, fails it with that reason.
- a job delivered again for a run of a sweep or walk-forward that has ended (its worker died
  after storing the result, before queuing what came next) has that done again
  (`strategies.attempt.not_run`), and is acked.

Stopping (SIGINT, SIGTERM) stops pulling, kills the slots' processes and hands their jobs back
to the queue at once (they run again from the start, on another worker or after a restart).
`candlegraph serve --workers N` runs the same worker inside the server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from db.backtest_store import BacktestRecord
from db.store import StoreError
from flows.nats_events import connect, finish
from server.backtest_queue import (
    CONSUMER,
    STREAM,
    JetStreamQueue,
    ensure_jobs_stream,
    ensure_workers_consumer,
)
from server.backtest_slots import Slot, SlotDied
from server.settings import Settings
from server.stores import open_store
from server.user_strategies import load_strategies
from server.worker_metrics import QUEUE_POLL_S, WorkerMetrics
from strategies.attempt import (
    AttemptEnd,
    AttemptStore,
    claim,
    give_up,
    not_run,
    note_failure,
)
from strategies.jobs import Job, decode_job
from strategies.registry import StrategyRegistry

log = logging.getLogger(__name__)

#: How long a pull waits for a job before the worker looks up (to notice a stop).
PULL_WAIT_S = 1.0
#: How long a job handed back after a failure waits before it is delivered again.
RETRY_DELAY_S = 1.0


class BacktestWorker:
    """Pulls jobs and runs them in `concurrency` processes until `run`'s `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        nc: Client,
        store: AttemptStore,
        *,
        concurrency: int,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], int] = time.time_ns,
        registry: StrategyRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._nc = nc
        self._store = store
        self._concurrency = concurrency
        self._clock = clock
        self._metrics = metrics if metrics is not None else WorkerMetrics()
        # Used here only to rank a sweep whose run this worker gives up on; the slots'
        # processes load their own from the same settings.
        self._registry = registry
        self._queue = JetStreamQueue(nc)
        self._ack_wait_s = settings.backtest_ack_wait_s
        self._max_attempts = settings.backtest_max_attempts
        #: How this worker names itself on the records it runs.
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    async def run(self, stop: asyncio.Event) -> None:
        js = self._nc.jetstream()
        await ensure_jobs_stream(js)
        await ensure_workers_consumer(js, ack_wait_s=self._ack_wait_s)
        pull = await js.pull_subscribe_bind(CONSUMER, STREAM)
        context = multiprocessing.get_context("spawn")
        slots = [Slot(context, self._settings, index) for index in range(self._concurrency)]
        free: asyncio.Queue[Slot] = asyncio.Queue()
        for each in slots:
            free.put_nowait(each)
        running: set[asyncio.Task[None]] = set()
        self._metrics.slots.set(self._concurrency)
        polling = asyncio.create_task(self._poll_queue(js))
        log.info("backtest worker %s pulling with %d processes", self.name, self._concurrency)
        try:
            while not stop.is_set():
                slot = await _first(free.get(), stop)
                if slot is None:
                    break
                msg = await self._pull(pull)
                if msg is None:
                    free.put_nowait(slot)
                    continue
                task = asyncio.create_task(self._handle(msg, slot))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(functools.partial(_put_back, free, slot))
        finally:
            polling.cancel()
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for slot in slots:
                slot.close()
            with contextlib.suppress(Exception):
                await pull.unsubscribe()
            log.info("backtest worker %s stopped", self.name)

    async def _pull(self, pull: nats.js.JetStreamContext.PullSubscription) -> Msg | None:
        try:
            [msg] = await pull.fetch(1, timeout=PULL_WAIT_S)
        except (TimeoutError, NatsTimeoutError):
            return None
        return msg

    async def _handle(self, msg: Msg, slot: Slot) -> None:
        attempt = msg.metadata.num_delivered
        try:
            job = decode_job(msg.data)
        except ValueError as error:
            log.error("dropping a backtest job that is not one (%s): %.200r", error, msg.data)
            self._metrics.job("dropped")
            self._metrics.failure("bad_job")
            await msg.term()
            return
        if attempt > self._max_attempts:
            await self._give_up(job, self._max_attempts, None)
            await msg.ack()
            return
        try:
            claimed = await asyncio.to_thread(
                claim, self._store, job, attempt, worker=self.name, clock=self._clock
            )
        except StoreError as error:
            claimed = AttemptEnd(outcome="retry", detail=f"the store failed: {error}")
        if isinstance(claimed, AttemptEnd):
            changed: list[BacktestRecord] = []
            end = await asyncio.to_thread(
                not_run, self._store, job, attempt, claimed, announce=changed.append,
                clock=self._clock, registry=self._registry,
            )
            for record in changed:
                await self._queue.announce(record)
            await self._ended(msg, job, attempt, end)
            return
        log.info("backtest %s attempt %d: starting", job.id, attempt)
        keeping = asyncio.create_task(self._keep_alive(msg))
        started = time.monotonic()
        self._metrics.busy.inc()
        try:
            await self._queue.announce(claimed)
            end = await slot.run(job, claimed, self._queue.announce)
        except SlotDied as died:
            self._metrics.failure("process_died")
            await self._lost(msg, job, attempt, str(died))
            return
        except asyncio.CancelledError:
            # Stopping: hand the job back at once, for another worker (or this one, restarted).
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        finally:
            keeping.cancel()
            self._metrics.busy.dec()
            self._metrics.run_seconds.observe(time.monotonic() - started)
        await self._ended(msg, job, attempt, end)

    async def _ended(self, msg: Msg, job: Job, attempt: int, end: AttemptEnd) -> None:
        log.info("backtest %s attempt %d: %s %s %s", job.id, attempt, end.outcome,
                 end.status or "", end.detail)
        self._count(end)
        await self._enqueue(end.jobs)
        if end.outcome in ("ended", "gone"):
            await msg.ack()
        elif end.outcome == "retry":
            await msg.nak(delay=RETRY_DELAY_S)
        # "superseded": a later delivery owns the job; acking this one would ack that one.

    def _count(self, end: AttemptEnd) -> None:
        if end.outcome == "ended":
            status = (end.status or "FAILED").lower()
            self._metrics.job(status if status in ("succeeded", "cancelled") else "failed")
            if status == "failed":
                self._metrics.failure("run")
        elif end.outcome == "retry":
            self._metrics.job("retried")
            self._metrics.failure("store")
        else:
            self._metrics.job(end.outcome)

    async def _poll_queue(self, js: nats.js.JetStreamContext) -> None:
        """Keep the queue-depth gauges up to date (a failed poll keeps the last values)."""
        while True:
            try:
                info = await js.consumer_info(STREAM, CONSUMER)
            except Exception as error:  # NATS away or reconnecting: try again next time
                log.debug("cannot read the backtest queue's depth: %s", error)
            else:
                self._metrics.pending.set(info.num_pending or 0)
                self._metrics.running.set(info.num_ack_pending or 0)
            await asyncio.sleep(QUEUE_POLL_S)

    async def _lost(self, msg: Msg, job: Job, attempt: int, reason: str) -> None:
        if attempt >= self._max_attempts:
            await self._give_up(job, attempt, reason)
            await msg.ack()
            return
        self._metrics.job("retried")
        await asyncio.to_thread(note_failure, self._store, job.id, attempt, reason)
        await msg.nak(delay=RETRY_DELAY_S)

    async def _give_up(self, job: Job, attempts: int, reason: str | None) -> None:
        self._metrics.job("gave_up")
        changed: list[BacktestRecord] = []
        jobs: list[Job] = []
        failed = await asyncio.to_thread(
            give_up, self._store, job.id, attempts, reason, now_ns=self._clock(),
            announce=changed.append, sweep_id=job.sweep_id, jobs=jobs, registry=self._registry,
        )
        for record in changed:
            await self._queue.announce(record)
        await self._enqueue(jobs)
        if failed is not None:
            log.error("backtest %s: %s", job.id, failed.error)

    async def _enqueue(self, jobs: list[Job]) -> None:
        """Queue the jobs an attempt asked for (a search's next batch, a fold's test run);
        if the queue refuses them, their records fail with the reason."""
        if not jobs:
            return
        try:
            await self._queue.enqueue(jobs)
        except Exception as error:
            reason = f"could not be queued: {type(error).__name__}: {error}"
            log.error("%d backtest jobs %s", len(jobs), reason)
            for queued in jobs:
                changed: list[BacktestRecord] = []
                await asyncio.to_thread(
                    give_up, self._store, queued.id, 0, reason, now_ns=self._clock(),
                    announce=changed.append, sweep_id=queued.sweep_id, registry=self._registry,
                )
                for record in changed:
                    await self._queue.announce(record)

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._ack_wait_s / 3)
            with contextlib.suppress(Exception):  # a lost one costs at most a redelivery
                await msg.in_progress()


def _put_back(free: asyncio.Queue[Slot], slot: Slot, _: asyncio.Task[None]) -> None:
    free.put_nowait(slot)


async def _first[T](waiting: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The awaitable's result, or None if `stop` is set first (the awaitable is cancelled)."""
    task = asyncio.ensure_future(waiting)
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if task in done:
        return task.result()
    task.cancel()
    return None


def run_worker(settings: Settings) -> int:
    """`candlegraph worker`: run until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        store = open_store(settings)
        nc = await connect(
            settings.nats_url, name="candlegraph-worker", max_reconnect_attempts=-1
        )
        try:
            metrics = WorkerMetrics()
            if settings.worker_metrics_port:
                metrics.serve(settings.metrics_host, settings.worker_metrics_port)
            worker = BacktestWorker(
                settings, nc, store, concurrency=settings.worker_concurrency,
                metrics=metrics, registry=load_strategies(settings),
            )
            await worker.run(stop)
        finally:
            await finish(nc)
            store.close()

    asyncio.run(main())
    return 0

