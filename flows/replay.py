"""`candlegraph import --replay`: a file's trades published on NATS, at their own pace.

The files are read as for an import (`flows.trade_import.stage_trades`), then published in
fold order (`flows.trade_order`: by time, repeats dropped) on `trades.<exchange>.<symbol>` by
the simulator's publisher (`flows.publisher.publish_trades`), so the live flow, subscriptions
and GraphiQL see history as if it were happening.

Pacing is by event time: with `speed` N, a trade is due `(ts - first ts) / N` after the
replay started, by the injected clock. Like the simulator, the replay works in ticks
(`tick_s`, 50 ms): each tick publishes every trade then due, in messages of at most
`MAX_TRADES_PER_MESSAGE`, and sleeps until the next trade is due, at least a tick later, so a
trade goes out at most one tick late and never early. With no speed (`--speed max`) it
publishes as fast as NATS takes the messages, `MAX_INFLIGHT` awaiting their acks at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from flows.files.bad_rows import BadRows
from flows.files.reader import SourceFile
from flows.files.rows import TRADE_COLUMNS
from flows.progress import NO_PROGRESS, Progress
from flows.staging import Staging
from flows.trade_archive import DAY_NS
from flows.trade_import import Market, stage_trades
from flows.trade_order import fold_order
from market.messages import Trade
from market.trade_batch import SIDES

#: Trades in one message (about 110 bytes each as JSON).
MAX_TRADES_PER_MESSAGE = 1000
#: Messages awaiting their acks at once with `--speed max`.
MAX_INFLIGHT = 16

Publish = Callable[[list[Trade]], Awaitable[object]]


@dataclass(slots=True)
class ReplayReport:
    trades_read: int = 0
    published: int = 0
    messages: int = 0
    duplicates: int = 0
    bad_rows: BadRows | None = None


class Pacer:
    """When trades are due in wall time (ns, by `clock_ns`), replayed at `speed` times their
    pace from the first one."""

    def __init__(self, speed: float, clock_ns: Callable[[], int]) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.clock_ns = clock_ns
        self._start_wall: int | None = None
        self._start_event = 0

    def due_ns(self, event_ns: int) -> int:
        """The wall time at which the trade of `event_ns` is due (the first one: now)."""
        if self._start_wall is None:
            self._start_wall = self.clock_ns()
            self._start_event = event_ns
        return self._start_wall + round((event_ns - self._start_event) / self.speed)


async def replay_trades(
    trades: Iterator[Trade],
    publish: Publish,
    *,
    speed: float | None,
    clock_ns: Callable[[], int] = time.time_ns,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tick_s: float = 0.05,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Publish `trades` (in event-time order) paced as the module docstring says; return
    (trades, messages) published."""
    sent = messages = 0
    if speed is None:
        batch: list[Trade] = []
        inflight: list[Awaitable[object]] = []
        for trade in trades:
            batch.append(trade)
            if len(batch) == MAX_TRADES_PER_MESSAGE:
                inflight.append(publish(batch))
                sent, messages, batch = sent + len(batch), messages + 1, []
                if len(inflight) == MAX_INFLIGHT:
                    await asyncio.gather(*inflight)
                    inflight = []
                    if progress is not None:
                        progress(MAX_INFLIGHT * MAX_TRADES_PER_MESSAGE)
        if batch:
            inflight.append(publish(batch))
            sent, messages = sent + len(batch), messages + 1
        await asyncio.gather(*inflight)
        if progress is not None:
            progress(sent % (MAX_INFLIGHT * MAX_TRADES_PER_MESSAGE))
        return sent, messages
    pacer = Pacer(speed, clock_ns)
    tick_ns = int(tick_s * 1e9)
    upcoming = next(trades, None)
    while upcoming is not None:
        now = clock_ns()
        due: list[Trade] = []
        while upcoming is not None and pacer.due_ns(upcoming.ts) <= now:
            due.append(upcoming)
            upcoming = next(trades, None)
        for start in range(0, len(due), MAX_TRADES_PER_MESSAGE):
            await publish(due[start:start + MAX_TRADES_PER_MESSAGE])
            messages += 1
        sent += len(due)
        if progress is not None and due:
            progress(len(due))
        if upcoming is not None:
            wake = max(pacer.due_ns(upcoming.ts), now + tick_ns)
            await sleep(max(wake - clock_ns(), 0) / 1e9)
    return sent, messages


async def replay_files(
    sources: Sequence[SourceFile],
    publish: Publish,
    *,
    market: Market,
    speed: float | None,
    work_dir: Path,
    clock_ns: Callable[[], int] = time.time_ns,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress: Progress = NO_PROGRESS,
) -> ReplayReport:
    """Read trade files and publish their trades (see the module docstring)."""
    report = ReplayReport(bad_rows=BadRows())
    assert report.bad_rows is not None
    staging = Staging(work_dir / "staging", DAY_NS, TRADE_COLUMNS)
    try:
        report.trades_read = stage_trades(sources, staging, report.bad_rows, progress)
        phase = progress.phase("replaying", report.trades_read, "trades")

        def trades() -> Iterator[Trade]:
            for partition in staging.partitions():
                rows, dropped = fold_order(staging.read(partition))
                report.duplicates += dropped
                yield from trade_messages(rows, market)

        try:
            report.published, report.messages = await replay_trades(
                trades(), publish, speed=speed, clock_ns=clock_ns, sleep=sleep,
                progress=phase.advance,
            )
        finally:
            phase.close()
    finally:
        staging.remove()
    return report


def trade_messages(rows: pl.DataFrame, market: Market) -> Iterator[Trade]:
    """Rows of `TRADE_COLUMNS` as `Trade` messages, in order."""
    exchange, symbol = market.exchange, market.symbol
    for ts, price, size, side, tid, sid in rows.select(list(TRADE_COLUMNS)).iter_rows():
        yield Trade(exchange, symbol, ts, price, size, SIDES[side],
                    str(tid) if tid >= 0 else sid)
