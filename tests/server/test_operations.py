"""Operating the server: health and readiness, Prometheus metrics, request ids, JSON logs, CORS.

All over real HTTP against uvicorn on loopback, with a real NATS server; the logs test runs
`candlegraph serve` as a user would and reads its stderr.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client

from market.messages import encode
from server.processes import free_port
from tests.conditions import eventually, wait_until
from tests.graphql.clients import GraphQLWs, metric, scrape
from tests.graphql.live import S, closed_candle, serve
from tests.servers import LiveApi, NatsServer

T0 = 1_700_000_040 * S
ORIGIN = "https://charts.example.com"


@pytest.fixture(scope="module")
def ops_api(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer
) -> Iterator[LiveApi]:
    server = serve(tmp_path_factory.mktemp("ops"), nats_server.url,
                   [closed_candle("SOL-USDT", T0)], cors_origins=(ORIGIN,))
    yield server
    server.stop()


def post(api: LiveApi, query: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{api.url}/graphql", json={"query": query}, headers=headers)


async def test_a_scrape_shows_operations_errors_and_latency(ops_api: LiveApi) -> None:
    for _ in range(2):
        assert "errors" not in post(ops_api, "query Markets { symbols { symbol } }").json()
    post(ops_api, "query Broken { symbols { nope } }")
    samples = await scrape(ops_api.url)
    markets = (("operation", "Markets"), ("type", "query"))
    assert samples[("candlegraph_graphql_requests_total", markets)] == 2
    assert samples[("candlegraph_graphql_request_duration_seconds_count", markets)] == 2
    assert 0 < samples[("candlegraph_graphql_request_duration_seconds_sum", markets)] < 5
    broken = (("code", "BAD_USER_INPUT"), ("operation", "Broken"), ("type", "query"))
    assert samples[("candlegraph_graphql_errors_total", broken)] == 1


async def test_a_scrape_shows_subscriptions_and_messages_fanned_out(
    ops_api: LiveApi, nc: Client
) -> None:
    before = await metric(ops_api.url, "candlegraph_fanout_messages_total")
    client = await GraphQLWs.connect(ops_api.ws_url)
    await client.subscribe('subscription Live { candles(exchange: "sim", symbol: "SOL-USDT", '
                           'timeframe: "1s") { trades } }')
    await eventually(lambda: _equals(ops_api, "candlegraph_subscriptions_open", 1),
                     what="the subscription")
    for trades in (1, 2, 3):
        await nc.publish("candles.sim.SOL-USDT.1s",
                         encode(closed_candle("SOL-USDT", T0 + trades * S, trades)))
        assert (await client.candle())["trades"] == trades
    samples = await scrape(ops_api.url)
    await client.close()
    assert samples[("candlegraph_fanout_messages_total", ())] - before == 3
    assert samples[("candlegraph_fanout_subjects", ())] == 1
    assert samples[("candlegraph_graphql_requests_total",
                    (("operation", "Live"), ("type", "subscription")))] == 1
    await eventually(lambda: _equals(ops_api, "candlegraph_subscriptions_open", 0),
                     what="the subscription to end")


async def _equals(api: LiveApi, name: str, value: float) -> bool:
    return await metric(api.url, name) == value


async def test_flow_lag_is_wall_time_minus_the_newest_candle_seen_on_nats(
    ops_api: LiveApi, nc: Client
) -> None:
    ten_s_ago = (time.time_ns() // S - 10) * S
    await nc.publish("candles.sim.ETH-USDT.1m", encode(closed_candle("ETH-USDT", ten_s_ago,
                                                                     timeframe="1m")))
    await nc.publish("candles.sim.ETH-USDT.1m", encode(closed_candle("ETH-USDT", T0,
                                                                     timeframe="1m")))
    lag = await eventually(lambda: _lag(ops_api, "1m"), what="a flow lag for 1m")
    assert 10 <= lag < 20  # the older candle, published after, does not count


async def _lag(api: LiveApi, timeframe: str) -> float:
    return await metric(api.url, "candlegraph_flow_lag_seconds", timeframe=timeframe)


def test_every_response_carries_a_request_id(ops_api: LiveApi) -> None:
    given = post(ops_api, "{ symbols { symbol } }", **{"X-Request-ID": "trace-42.a:b"})
    assert given.headers["X-Request-ID"] == "trace-42.a:b"
    made = httpx.get(f"{ops_api.url}/health")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    # Anything that could forge a log line is replaced.
    forged = httpx.get(f"{ops_api.url}/health", headers={"X-Request-ID": 'x" "level": "ok'})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])


def test_cors_preflight_allows_configured_origins_only(ops_api: LiveApi) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(f"{ops_api.url}/graphql", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        })

    allowed = preflight(ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    refused = preflight("https://evil.example.org")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = post(ops_api, "{ symbols { symbol } }", Origin=ORIGIN)
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_websockets_from_other_origins_are_refused(ops_api: LiveApi) -> None:
    allowed = await GraphQLWs.connect(ops_api.ws_url, headers={"Origin": ORIGIN})
    await allowed.close()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await GraphQLWs.connect(ops_api.ws_url, headers={"Origin": "https://evil.example.org"})
    assert refused.value.response.status_code == 403


def test_without_cors_origins_no_cors_headers_are_sent(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    server = serve(tmp_path, nats_server.url)
    try:
        response = httpx.options(f"{server.url}/graphql", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    finally:
        server.stop()
    assert "access-control-allow-origin" not in response.headers


async def test_ready_turns_503_when_nats_goes_away_while_health_stays_up(
    tmp_path: Path,
) -> None:
    own_nats = NatsServer(monitor=True)
    server = serve(tmp_path, own_nats.url)
    try:
        assert httpx.get(f"{server.url}/ready").status_code == 200
        own_nats.stop()
        wait_until(lambda: httpx.get(f"{server.url}/ready").status_code == 503,
                   what="/ready to notice")
        ready = httpx.get(f"{server.url}/ready").json()
        health = httpx.get(f"{server.url}/health")
    finally:
        server.stop()
    assert ready == {"ready": False, "nats": "disconnected", "store": "ok"}
    assert health.status_code == 200 and health.json()["status"] == "degraded"


def test_serve_logs_json_lines_that_carry_the_request_id(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update({"CANDLEGRAPH_NATS_URL": nats_server.url, "CANDLEGRAPH_PORT": str(port),
                "CANDLEGRAPH_DATA_DIR": str(tmp_path), "CANDLEGRAPH_LOG_LEVEL": "INFO"})
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]  # stderr=PIPE: never None
                              daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _serving(url), timeout_s=30, what="candlegraph serve")
        httpx.post(f"{url}/graphql", json={"query": "{ candles(exchange: \"sim\", "
                   "symbol: \"BTC-USDT\", timeframe: \"9s\") { ts } }"},
                   headers={"X-Request-ID": "req-log-test"})
        tagged = wait_until(lambda: _tagged(lines, "req-log-test", 2), what="two tagged lines")
        served = list(lines)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert all(json.loads(line) for line in served), "every line is a JSON object"
    messages = [str(r["message"]) for r in tagged]
    assert "POST /graphql 200" in messages
    assert any(m.startswith("client error: ") for m in messages)  # logged inside the request
    access = next(r for r in tagged if r["message"] == "POST /graphql 200")
    assert access["level"] == "INFO" and access["status"] == 200 and access["duration_ms"] > 0


def _serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _tagged(lines: list[str], request_id: str, count: int) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in list(lines) if line.startswith("{")]
    found = [r for r in records if r.get("request_id") == request_id]
    return found if len(found) >= count else []
