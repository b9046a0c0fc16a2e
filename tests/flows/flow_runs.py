"""Helpers for tests that run `candlegraph flow` as a process against the real NATS server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from db.sqlite import SqliteStore
from flows.subjects import trades_subject
from market.messages import Candle, Trade, encode
from market.timeframes import STANDARD_TIMEFRAMES, Timeframe

S = 1_000_000_000

Snapshot = tuple[dict[tuple[str, str, int], Candle], dict[tuple[str, str, int, str], float]]


def _env(nats_url: str, data_dir: Path, settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update(CANDLEGRAPH_NATS_URL=nats_url, CANDLEGRAPH_DATA_DIR=str(data_dir),
               CANDLEGRAPH_LOG_LEVEL="WARNING")
    env.update({f"CANDLEGRAPH_{k.upper()}": v for k, v in settings.items()})
    return env


def start_flow(nats_url: str, data_dir: Path, *args: str, **settings: str) -> subprocess.Popen:
    """`candlegraph flow` (a supervisor of worker processes) in a child process; `settings`
    are CANDLEGRAPH_* names in lower case."""
    return subprocess.Popen([sys.executable, "-m", "server.cli", "flow", *args],
                            env=_env(nats_url, data_dir, settings))


def start_member(nats_url: str, data_dir: Path, **settings: str) -> subprocess.Popen:
    """One flow worker process with no supervisor, as `candlegraph flow` starts it: a test
    that SIGKILLs it sees the crash itself, not a supervisor's restart."""
    return subprocess.Popen([sys.executable, "-m", "server.flow_process"],
                            env=_env(nats_url, data_dir, settings))


def ordered_trades(symbols: int, per_second: int, seconds: int, t0: int) -> list[Trade]:
    """Trades of `symbols` markets in time order, `per_second` per market, integer ids."""
    trades = []
    step = S // per_second
    for i in range(seconds * per_second):
        for m in range(symbols):
            price = 100.0 * (m + 1) + ((i * 7919 + m * 104729) % 2003 - 1001) / 100.0
            trades.append(Trade(
                "rec", f"M{m:02d}-USDT", t0 + i * step + m, price, 0.001 * (i % 13 + 1),
                "buy" if i % 2 else "sell", str(i + 1),
            ))
    return trades


def messages(trades: list[Trade]) -> list[tuple[str, bytes]]:
    """One message per market per second of event time, in time order."""
    groups: dict[tuple[int, str], list[Trade]] = {}
    for t in trades:
        groups.setdefault((t.ts // S, t.symbol), []).append(t)
    return [(trades_subject("rec", symbol), encode(batch))
            for (_, symbol), batch in sorted(groups.items())]


async def publish(js: JetStreamContext, batch: list[tuple[str, bytes]]) -> None:
    await asyncio.gather(*(js.publish(subject, data) for subject, data in batch))


async def acked(js: JetStreamContext, count: int) -> bool:
    """True once the durable consumer has acked the first `count` stream messages."""
    try:
        info = await js.consumer_info("TRADES", "candles")
    except NotFoundError:
        return False
    return info.ack_floor.stream_seq >= count and info.num_ack_pending == 0


def stored(store_path: Path, markets: list[str], final_before_ns: int) -> Snapshot:
    """Stored candles and indicator values of candles that end at or before `final_before_ns`
    (the data's own watermark: candles an idle timer may close later are left out)."""
    store = SqliteStore(store_path)
    candles: dict[tuple[str, str, int], Candle] = {}
    values: dict[tuple[str, str, int, str], float] = {}
    try:
        for symbol in markets:
            for name in STANDARD_TIMEFRAMES:
                width = Timeframe.parse(name).ns
                for c in store.candles("rec", symbol, name, limit=1_000_000):
                    if c.ts + width <= final_before_ns:
                        candles[(symbol, name, c.ts)] = msgspec.structs.replace(c)
                frame = store.indicators("rec", symbol, name, limit=1_000_000)
                for row in frame.iter_rows(named=True):
                    ts = row.pop("ts")
                    if ts + width > final_before_ns:
                        continue
                    for key, value in row.items():
                        if value is not None:
                            values[(symbol, name, ts, key)] = value
    finally:
        store.close()
    return candles, values


def snapshot_position(data_dir: Path) -> int | None:
    """The stream sequence in the source's latest committed snapshot, if there is one (in
    whichever process's recovery partition holds the source)."""
    for part in (data_dir / "recovery").glob("process-*/part-*.sqlite3"):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True)) as db:
                row = db.execute(
                    "SELECT ser_change FROM snaps WHERE step_id = 'candles.read_trades'"
                    " AND snap_epoch <= (SELECT max(commit_epoch) FROM commits)"
                    " ORDER BY snap_epoch DESC LIMIT 1"
                ).fetchone()
        except sqlite3.Error:
            continue
        if row and row[0]:
            return int(pickle.loads(row[0]))
    return None
