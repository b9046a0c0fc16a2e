"""The Grafana dashboard and Prometheus configuration of docker-compose.yml, against real
processes: every metric a dashboard panel queries is served by a running CandleGraph process.

`candlegraph up --exchange binance` runs against the fake Binance, with a subscriber, a bad
trade message and GraphQL queries (one of them an error) for traffic, so that every labelled
series exists; then the GraphQL server's `/metrics`, the flow worker's, the feed's and the
backtest worker's are scraped, and each metric name in the dashboard's PromQL must be among them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from market.messages import Trade, encode
from server.processes import free_port
from server.settings import Settings
from tests.conditions import eventually, wait_until
from tests.fake_binance import FakeBinance
from tests.graphql.clients import GraphQLWs

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "candlegraph.json"
_METRIC = re.compile(r"\bcandlegraph_[a-z_]+\b")
_SUFFIXES = ("_bucket", "_count", "_sum")


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's queries use (histogram suffixes kept)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def served(url: str) -> set[str]:
    """The sample names a process serves right now (empty while it does not answer)."""
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return set()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_scrapes_each_process_where_its_settings_serve_metrics() -> None:
    config = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    defaults = Settings()
    assert targets["server"] == {"names": ["server"], "type": "A", "port": defaults.port}
    assert targets["flow"] == {"names": ["flow"], "type": "A", "port": defaults.flow_metrics_port}
    assert targets["feed"] == {"names": ["feed"], "type": "A", "port": defaults.feed_metrics_port}
    assert targets["worker"] == {
        "names": ["worker"], "type": "A", "port": defaults.worker_metrics_port}
    provisioning = ROOT / "ops" / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "candlegraph.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    uid = sources["datasources"][0]["uid"]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {p["datasource"]["uid"] for p in panels if "datasource" in p} == {uid}


async def test_every_metric_the_dashboard_queries_is_served_by_a_running_process(
    tmp_path: Path,
) -> None:
    fake = FakeBinance().start()
    port, nats_port = free_port(), free_port()
    flow_metrics, feed_metrics, worker_metrics = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update(CANDLEGRAPH_EXCHANGE_CONFIG=json.dumps(fake.ccxt_config()),
               CANDLEGRAPH_FLOW_METRICS_PORT=str(flow_metrics),
               CANDLEGRAPH_FEED_METRICS_PORT=str(feed_metrics),
               CANDLEGRAPH_WORKER_METRICS_PORT=str(worker_metrics),
               CANDLEGRAPH_TIMEFRAMES="1s,1m", CANDLEGRAPH_LOG_LEVEL="WARNING",
               CANDLEGRAPH_SNAPSHOT_INTERVAL_S="1", CANDLEGRAPH_FORMING_INTERVAL_MS="50")
    up = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up", "--data-dir", str(tmp_path / "data"),
         "--port", str(port), "--nats-port", str(nats_port),
         "--exchange", "binance", "--symbols", "BTC/USDT"], env=env,
    )
    urls = [f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{flow_metrics}/metrics",
            f"http://127.0.0.1:{feed_metrics}/metrics", f"http://127.0.0.1:{worker_metrics}/metrics"]
    wanted = dashboard_metrics()
    subscriber: GraphQLWs | None = None
    try:
        wait_until(lambda: all(served(url) for url in urls), timeout_s=60,
                   what="every process serving /metrics")
        wait_until(lambda: any(s.streams for s in list(fake._sockets)), timeout_s=30,
                   what="the feed to subscribe")
        making = fake.run("BTCUSDT", rate=50, seconds=6)
        url = f"http://127.0.0.1:{port}/graphql"
        wait_until(lambda: httpx.post(url, json={"query": "{ symbols { symbol } }"}).json()
                   .get("data", {}).get("symbols"), timeout_s=30, what="a stored market")
        subscriber = await GraphQLWs.connect(f"ws://127.0.0.1:{port}")
        await subscriber.subscribe('subscription { candles(exchange: "binance", '
                                   'symbol: "BTC-USDT", timeframe: "1s") { ts close } }')
        nc = await nats.connect(f"nats://127.0.0.1:{nats_port}")
        old = Trade("binance", "BTC-USDT", 10**18, 1.0, 1.0, "buy", "late-1")  # 2001: late
        await nc.jetstream().publish("trades.binance.BTC-USDT", encode([old]))
        await nc.close()
        httpx.post(url, json={"query": "{ symbols { nope } }"})  # an error, by code
        await subscriber.candle(timeout_s=30)

        missing: list[str] = []

        async def every_metric_served() -> bool:
            httpx.post(url, json={"query": "{ symbols { symbol } }"})
            names = set().union(*(served(u) for u in urls))
            missing[:] = sorted(m for m in wanted if m not in names)
            return not missing

        # On a timeout, the assertion below names the metrics still missing.
        with contextlib.suppress(pytest.fail.Exception):
            await eventually(every_metric_served, timeout_s=60, what="every dashboard metric")
        assert missing == [], "dashboard metrics no process serves"
        making.result(timeout=30)
    finally:
        if subscriber is not None:
            await subscriber.close()
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(timeout=20) == 0
        finally:
            if up.poll() is None:
                up.kill()
            fake.stop()


def test_the_dashboard_queries_the_metrics_the_live_test_checks() -> None:
    """A guard for the live test above: its metric list is not empty or misspelt."""
    names = dashboard_metrics()
    assert {"candlegraph_flow_trades_total", "candlegraph_graphql_errors_total",
            "candlegraph_feed_lag_seconds"} <= names
    assert all(not n.endswith(_SUFFIXES) or n.endswith("_bucket") for n in names)
