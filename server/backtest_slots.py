"""The processes a backtest worker runs its jobs in: one per slot, kept for many jobs.

A slot's process is spawned (not forked: a fork would copy NautilusTrader's runtime and the
event loop's threads mid-flight), opens its own store from the settings, so candles never
cross a pipe, and imports the engine once as it starts. It then runs one claimed job at a time
(`strategies.attempt.run_claimed`), sending back over its pipe every record change to announce
and, last, how the attempt ended. The process dies with the worker (SIGTERM on the parent's
death), so a killed worker leaves no job running. A slot whose process dies (the job crashed
it, or someone killed it) raises `SlotDied` to the worker and starts a fresh process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

import msgspec

from db.backtest_store import BacktestRecord
from server.settings import Settings
from strategies.attempt import AttemptEnd
from strategies.jobs import Job, decode_job, encode_job

log = logging.getLogger(__name__)

_RECORD = msgspec.json.Decoder(BacktestRecord)
_END = msgspec.json.Decoder(AttemptEnd)


class SlotDied(Exception):
    """The slot's process ended while it ran a job."""


class Slot:
    """One process of a worker. Create and use it on the event loop's thread: the process is
    told to die with the thread that started it."""

    def __init__(self, context: SpawnContext, settings: Settings, index: int) -> None:
        self._context = context
        self._settings = settings
        self._index = index
        self._start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _start(self) -> None:
        ours, theirs = self._context.Pipe()
        self._process: SpawnProcess = self._context.Process(
            target=slot_main, args=(self._settings, theirs, os.getpid()),
            name=f"backtest-slot-{self._index}", daemon=True,
        )
        self._process.start()
        theirs.close()
        self._conn: Connection = ours
        # A thread per process reads its pipe with blocking reads: the event loop may be
        # uvloop (NautilusTrader installs it), whose add_reader makes the descriptor
        # non-blocking, and a Connection cannot read a message that arrives in parts then.
        self._inbox: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._reader = threading.Thread(
            target=_read_pipe, args=(ours, self._inbox, asyncio.get_running_loop()),
            name=f"backtest-slot-{self._index}-pipe", daemon=True,
        )
        self._reader.start()

    async def run(
        self, job: Job, claimed: BacktestRecord,
        announce: Callable[[BacktestRecord], Awaitable[None]],
    ) -> AttemptEnd:
        """Run `job`, whose record the worker has claimed, in this slot's process, announcing
        each change it stores. Raises `SlotDied` (and starts a new process) if the process
        dies meanwhile; cancelling (the worker is stopping) kills the process for good."""
        if not self._process.is_alive():  # it died between jobs: not this job's doing
            log.error("backtest slot %d (pid %s) %s while idle; starting it again",
                      self._index, self.pid, _death(self._process.exitcode))
            self._restart()
        try:
            self._conn.send(("run", encode_job(job), msgspec.json.encode(claimed)))
            while True:
                kind, data = await self._receive()
                if kind == "record":
                    await announce(_RECORD.decode(data))
                else:
                    return _END.decode(data)
        except (EOFError, OSError) as error:
            self._process.join(5)
            reason = _death(self._process.exitcode)
            log.error("backtest slot %d (pid %s) %s running %s (%r)", self._index, self.pid,
                      reason, job.id, error)
            self._restart()
            raise SlotDied(f"the worker process {reason}") from error
        except asyncio.CancelledError:
            self.close()
            raise

    def close(self) -> None:
        """Kill the process (a job it runs is handed back to the queue by the worker)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)
        # Its end of the pipe closed with it: the reader thread has read the end of it.
        self._reader.join(5)
        self._conn.close()

    def _restart(self) -> None:
        self.close()
        self._start()

    async def _receive(self) -> tuple[str, bytes]:
        message = await self._inbox.get()
        if message is None:
            raise EOFError("the slot's pipe closed")
        return message


def _read_pipe(
    conn: Connection, inbox: asyncio.Queue[tuple[str, bytes] | None],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Hand each message of the pipe to the event loop, then None once it closes."""
    while True:
        try:
            message: tuple[str, bytes] | None = conn.recv()
        except (EOFError, OSError):
            message = None
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, message)
        except RuntimeError:  # the loop has closed
            return
        if message is None:
            return


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        return f"died (signal {signal.Signals(-exitcode).name})"
    return f"exited with code {exitcode}"


def slot_main(settings: Settings, conn: Connection, parent_pid: int) -> None:
    """A slot's process: run the jobs the worker sends until it closes the pipe."""
    from server.logs import configure_logging
    from server.processes import die_with_parent
    from server.stores import open_store
    from server.user_strategies import load_strategies
    from strategies.attempt import CandleCache, run_claimed

    die_with_parent()
    if os.getppid() != parent_pid:
        return  # the worker died before we could ask to die with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the worker's to act on
    configure_logging(settings.log_level, settings.log_format)
    store = open_store(settings)
    cache = CandleCache()
    # The worker reported the strategies left out when it started; this is the same list.
    registry = load_strategies(settings, report=False)

    def announce(record: BacktestRecord) -> None:
        conn.send(("record", msgspec.json.encode(record)))

    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            _, job, claimed = message
            end = run_claimed(
                store, decode_job(job), _RECORD.decode(claimed), announce=announce, candles=cache,
                registry=registry,
            )
            conn.send(("end", msgspec.json.encode(end)))
    finally:
        with contextlib.suppress(Exception):
            store.close()
