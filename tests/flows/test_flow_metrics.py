"""A flow worker serves its own Prometheus metrics: counts by kind, dead letters by reason,
batch latency, snapshot age and restarts."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
from nats.aio.client import Client

from market.messages import Trade, encode
from server.processes import free_port
from tests.conditions import eventually
from tests.flows.flow_runs import S, start_member
from tests.graphql.clients import scrape
from tests.servers import NatsServer


async def test_a_flow_worker_serves_its_counters_latency_and_snapshot_age(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    js = nc.jetstream()
    t0 = (time.time_ns() - 600 * S) // (60 * S) * (60 * S)
    trades = [Trade("met", "BTC-USDT", t0 + i * S // 4, 100.0 + i % 7, 0.5, "buy", str(i + 1))
              for i in range(400)]
    await js.publish("trades.met.BTC-USDT", encode(trades[:200]))
    await js.publish("trades.met.BTC-USDT", encode(trades[190:200]))  # ten duplicates
    await js.publish("trades.met.BTC-USDT", b"{not json")
    await js.publish("trades.met.BTC-USDT", encode(trades[200:]))
    port = free_port()
    flow = start_member(nats_server.url, tmp_path, timeframes="1s,1m",
                        flow_metrics_port=str(port), snapshot_interval_s="0.2")
    url = f"http://127.0.0.1:{port}"
    worker = (("worker", "0"),)

    async def counted() -> dict:
        try:
            samples = await scrape(url)
        except httpx.HTTPError:  # not serving yet
            return {}
        done = samples.get(("candlegraph_flow_trades_total", worker)) == 400
        age = samples.get(("candlegraph_flow_snapshot_age_seconds", worker), math.nan)
        has_age = not math.isnan(age)  # NaN until the first snapshot
        return samples if done and has_age else {}

    try:
        samples = await eventually(counted, timeout_s=30, what="the flow's metrics")
        assert samples[("candlegraph_flow_messages_total", worker)] == 4
        assert samples[("candlegraph_flow_duplicates_total", worker)] == 10
        assert samples[("candlegraph_flow_dead_letters_total",
                        (("reason", "undecodable"), *worker))] == 1
        assert samples[("candlegraph_flow_candles_closed_total", worker)] >= 95
        assert samples[("candlegraph_flow_batch_seconds_count", worker)] >= 1
        assert 0 <= samples[("candlegraph_flow_snapshot_age_seconds", worker)] < 30
        assert samples[("candlegraph_flow_restarts", worker)] == 0
    finally:
        flow.terminate()
        assert flow.wait(timeout=30) == 0
