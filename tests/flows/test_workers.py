"""Scale-out: `candlegraph flow --workers 2` runs two processes that split the markets between
them and store exactly the candles and indicator values one worker stores."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.conditions import eventually
from tests.flows.flow_runs import S, acked, messages, ordered_trades, publish, start_flow, stored
from tests.servers import NatsServer


async def test_two_worker_processes_store_exactly_the_candles_of_one(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    t0 = (time.time_ns() - 7200 * S) // (3600 * S) * (3600 * S)
    trades = ordered_trades(symbols=12, per_second=20, seconds=150, t0=t0)
    batches = messages(trades)
    js = nc.jetstream()
    await publish(js, batches)
    trades_by_worker: dict[int, int] = {}

    async def on_stats(msg: Msg) -> None:
        report = msgspec.json.decode(msg.data)
        trades_by_worker[report["worker"]] = report["counts"].get("trades", 0)

    await nc.subscribe("stats.flow.*", cb=on_stats)
    runs: dict[int, Path] = {}
    for workers in (2, 1):
        runs[workers] = tmp_path / f"workers-{workers}"
        flow = start_flow(nats_server.url, runs[workers], "--workers", str(workers),
                          flow_stats_interval_s="0.2")
        try:
            await eventually(lambda: acked(js, len(batches)), timeout_s=60,
                             what=f"every message acked by {workers} workers")
            if workers == 2:
                await eventually(
                    lambda: _true(sum(trades_by_worker.values()) == len(trades)),
                    what="both workers' counters",
                )
                assert set(trades_by_worker) == {0, 1}
                assert min(trades_by_worker.values()) > len(trades) // 5  # both did real work
        finally:
            flow.terminate()
            assert flow.wait(timeout=30) == 0
        await js.delete_consumer("TRADES", "candles")

    markets = sorted({t.symbol for t in trades})
    # Each worker's watermark follows its own markets: compare what both have made final.
    final_before = max(t.ts for t in trades) - 6 * S
    one = stored(runs[1] / "candlegraph.sqlite", markets, final_before)
    two = stored(runs[2] / "candlegraph.sqlite", markets, final_before)
    assert len(one[0]) > 12 * 140 and len(one[1]) > 20_000
    assert two == one


async def _true(value: bool) -> bool:
    return value
