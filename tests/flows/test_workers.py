"""Scale-out: `candlegraph flow --workers 2` runs two processes that split the markets between
them and store exactly the candles and indicator values one worker stores, even when one of
them dies and the supervisor restarts the cluster from its snapshots."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.conditions import eventually
from tests.flows.flow_runs import (
    S,
    acked,
    messages,
    ordered_trades,
    publish,
    snapshot_position,
    start_flow,
    stored,
)
from tests.servers import NatsServer


async def test_two_worker_processes_store_exactly_the_candles_of_one_even_after_a_crash(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    """The two-worker cluster loses a member halfway (SIGKILL); its supervisor restarts both
    from their last snapshot, and the candles must still equal those of one worker."""
    t0 = (time.time_ns() - 7200 * S) // (3600 * S) * (3600 * S)
    trades = ordered_trades(symbols=12, per_second=20, seconds=150, t0=t0)
    batches = messages(trades)
    half = len(batches) // 2
    js = nc.jetstream()
    reports: dict[int, dict] = {}

    async def on_stats(msg: Msg) -> None:
        report = msgspec.json.decode(msg.data)
        reports[report["worker"]] = report

    await nc.subscribe("stats.flow.*", cb=on_stats)
    two = tmp_path / "workers-2"
    flow = start_flow(nats_server.url, two, "--workers", "2",
                      flow_stats_interval_s="0.2", snapshot_interval_s="0.5")
    try:
        await publish(js, batches[:half])
        await eventually(lambda: acked(js, half), timeout_s=60,
                         what="the first half acked by 2 workers")
        await eventually(lambda: _true(
            sum(r["counts"].get("trades", 0) for r in reports.values()) > len(trades) // 3
        ), what="both workers' counters")
        assert set(reports) == {0, 1}
        counts = [r["counts"].get("trades", 0) for r in reports.values()]
        assert min(counts) > len(trades) // 10  # both did real work
        await eventually(lambda: _true(snapshot_position(two) is not None),
                         what="a committed snapshot of the cluster")
        victim = reports[1]["pid"]
        os.kill(victim, signal.SIGKILL)
        await publish(js, batches[half:])
        await eventually(lambda: acked(js, len(batches)), timeout_s=90,
                         what="every message acked after the restart")
        await eventually(lambda: _true(reports[1]["pid"] != victim),
                         what="a report from member 1 running again, in a new process")
        assert flow.poll() is None, "the supervisor kept running"
    finally:
        flow.terminate()
        assert flow.wait(timeout=30) == 0
    await js.delete_consumer("TRADES", "candles")

    one = tmp_path / "workers-1"
    flow = start_flow(nats_server.url, one, "--workers", "1")
    try:
        await eventually(lambda: acked(js, len(batches)), timeout_s=60,
                         what="every message acked by 1 worker")
    finally:
        flow.terminate()
        assert flow.wait(timeout=30) == 0

    markets = sorted({t.symbol for t in trades})
    # Each worker's watermark follows its own markets: compare what both have made final.
    final_before = max(t.ts for t in trades) - 6 * S
    expected = stored(one / "candlegraph.sqlite", markets, final_before)
    got = stored(two / "candlegraph.sqlite", markets, final_before)
    assert len(expected[0]) > 12 * 140 and len(expected[1]) > 20_000
    assert got == expected


async def _true(value: bool) -> bool:
    return value
