"""`candlegraph flow` restarts a worker that dies, and the server's /metrics shows the count."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from market.messages import Trade, encode
from tests.conditions import eventually
from tests.flows.flow_runs import start_flow
from tests.graphql.clients import metric
from tests.graphql.live import S, serve
from tests.servers import NatsServer


async def test_a_killed_flow_worker_is_restarted_and_counted_on_metrics(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    api = serve(tmp_path / "api", nats_server.url)
    reports: list[dict] = []

    async def on_stats(msg: Msg) -> None:
        reports.append(msgspec.json.decode(msg.data))

    await nc.subscribe("stats.flow.*", cb=on_stats)
    js = nc.jetstream()
    t0 = time.time_ns() - 600 * S
    sent = 0

    async def trade_then(check: bool) -> bool:
        """Publish one more trade (a worker reports while it has work), then check."""
        nonlocal sent
        sent += 1
        trade = Trade("sup", "BTC-USDT", t0 + sent * S // 10, 100.0, 1.0, "buy", str(sent))
        await js.publish("trades.sup.BTC-USDT", encode([trade]))
        return check

    flow = start_flow(nats_server.url, tmp_path / "flow", flow_stats_interval_s="0.1")
    try:
        await eventually(lambda: trade_then(bool(reports)), timeout_s=30,
                         what="a report from the worker")
        first = reports[-1]
        assert (first["restarts"], flow.pid != first["pid"]) == (0, True)
        os.kill(first["pid"], signal.SIGKILL)
        await eventually(lambda: trade_then(reports[-1]["pid"] != first["pid"]), timeout_s=30,
                         what="a report from a new worker process")
        assert reports[-1]["restarts"] == 1
        assert flow.poll() is None, "the supervisor keeps running"
        restarts = await eventually(
            lambda: metric(api.url, "candlegraph_flow_restarts", worker="0"),
            what="the restart on the server's /metrics",
        )
        assert restarts == 1
        trades = await metric(api.url, "candlegraph_flow_events", worker="0", event="trades")
        assert trades > 0
    finally:
        flow.send_signal(signal.SIGTERM)
        assert flow.wait(timeout=30) == 0
        api.stop()
