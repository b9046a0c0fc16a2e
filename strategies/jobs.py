"""Queued backtests: the job a worker runs, the life of its record, and the queue's seam.

A record goes QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED. Every change is written to
the store first (a compare-and-set, so concurrent writers never lose one) and then announced
on the queue, so any server can follow any run. Which of two versions of a record is the
later one (`newer`) follows from that life alone: a terminal status is final, a later attempt
replaces an earlier one, RUNNING follows QUEUED, and progress only grows within an attempt.

The queue itself (`JobQueue`) is NATS JetStream in production (`server.backtest_queue`); this
module only says what crosses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal, Protocol

import msgspec

from db.backtest_store import BacktestRecord
from strategies.spec import BacktestSpec

#: The namespace of `child_id`'s name-based UUIDs.
_CHILDREN = uuid.UUID("4f2c6a53-1d0e-4b1f-9a55-6c1b8e0f7d21")

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
ACTIVE = frozenset({"QUEUED", "RUNNING"})


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One run for a worker: its record's id and everything needed to run it.

    `keep_equity` is False for a sweep's runs: a curve holds one point per bar, and a sweep of
    hundreds would store hundreds of them.
    """

    id: str
    spec: BacktestSpec
    start_ns: int
    end_ns: int
    sweep_id: str | None = None
    keep_equity: bool = True


class Changes(Protocol):
    """The changes of one record announced since the subscription began."""

    async def next(self, timeout_s: float) -> list[BacktestRecord]:
        """Every change received since the last call, oldest first, waiting up to `timeout_s`
        for the first; empty when none came in time."""
        ...


class JobQueue(Protocol):
    async def enqueue(self, jobs: Sequence[Job]) -> None:
        """Queue the jobs durably (once each, even if sent again), in order."""
        ...

    async def announce(self, record: BacktestRecord) -> None:
        """Tell every follower of this record (on any server) that it changed. What crosses
        is the record without `metrics_json`: a follower reads the result from the store."""
        ...

    def follow(self, id: str) -> AbstractAsyncContextManager[Changes]:
        """Subscribe to the changes of record `id` from now on, until the block ends."""
        ...


def newer(current: BacktestRecord, other: BacktestRecord) -> BacktestRecord:
    """The later of two versions of one record."""
    if current.status in TERMINAL:
        return current
    if other.status in TERMINAL:
        return other
    if other.attempt != current.attempt:
        return other if other.attempt > current.attempt else current
    if current.status != other.status:
        return other if other.status == "RUNNING" else current
    return other if other.progress >= current.progress else current


def new_record(
    spec: BacktestSpec,
    *,
    kind: Literal["backtest", "sweep", "walkforward"],
    start_ns: int,
    end_ns: int,
    created_ns: int,
    spec_json: str | None = None,
    sweep_id: str | None = None,
    id: str | None = None,
) -> BacktestRecord:
    """A QUEUED record with `id` (a fresh one by default); `spec_json` defaults to the spec
    itself."""
    return BacktestRecord(
        id=id if id is not None else uuid.uuid4().hex, kind=kind, status="QUEUED",
        strategy=spec.strategy, exchange=spec.exchange, symbol=spec.symbol,
        timeframe=spec.timeframe,
        start_ns=start_ns, end_ns=end_ns, created_ns=created_ns,
        spec_json=spec_json if spec_json is not None else msgspec.json.encode(spec).decode(),
        sweep_id=sweep_id,
    )


def child_id(parent_id: str, name: str) -> str:
    """The id of the child `name` of record `parent_id` (a search's trial, a fold's test run):
    the same every time, so a process that stores a child a dead one had asked for stores the
    same record, and the queue drops its job if the first was queued."""
    return uuid.uuid5(_CHILDREN, f"{parent_id}:{name}").hex


def job_of(record: BacktestRecord, *, keep_equity: bool) -> Job:
    """The job of a queued run's record."""
    return Job(
        id=record.id, spec=msgspec.json.decode(record.spec_json, type=BacktestSpec),
        start_ns=record.start_ns, end_ns=record.end_ns, sweep_id=record.sweep_id,
        keep_equity=keep_equity,
    )


def encode_job(job: Job) -> bytes:
    return msgspec.json.encode(job)


def decode_job(data: bytes) -> Job:
    """A job from the queue; raises `msgspec.ValidationError` (a `ValueError`) if it is not
    one, with the spec's own checks applied."""
    return msgspec.json.decode(data, type=Job)
