"""Hostile HTTP and websocket clients get clean GraphQL errors, and the server stays up.

Against real uvicorn on loopback: bodies that are not UTF-8 JSON, bodies and query strings
over the size limit (declared or chunked), huge string arguments, the token limit and plain
syntax errors (each with `extensions.code`), legacy `graphql-ws` sockets that never send
`connection_init` or send nonsense, the cap on open websockets; and `candlegraph serve` as a
process, whose peak memory stays bounded under 100 silent websockets and a stream of
oversized requests, and whose log lines stay short.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.processes import free_port
from tests.conditions import eventually, wait_until
from tests.graphql.clients import LEGACY_WS, TRANSPORT_WS, GraphQLWs
from tests.graphql.live import serve
from tests.servers import LiveApi, NatsServer

LIMIT = 16 * 1024
MAX_MESSAGE = 2000  # graphql_schema.guard.MAX_MESSAGE_CHARS


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[LiveApi]:
    server = serve(tmp_path_factory.mktemp("hostile"), nats_server.url,
                   max_request_bytes=LIMIT, max_websockets=3, ws_init_timeout_s=0.5)
    yield server
    server.stop()


def post(api: LiveApi, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    return httpx.post(f"{api.url}/graphql", content=content,
                      headers={"content-type": "application/json", **headers})


def the_error(response: httpx.Response) -> dict:
    (error,) = response.json()["errors"]
    return error


def test_a_body_that_is_not_utf8_is_a_400_graphql_error(api: LiveApi) -> None:
    response = post(api, b'{"query": "{ __typename }", "x": "\xff\xfe"}')
    assert response.status_code == 400
    assert the_error(response)["extensions"] == {"code": "BAD_USER_INPUT"}


def test_a_body_nested_past_the_recursion_limit_is_a_400(api: LiveApi) -> None:
    response = post(api, b"[" * 5000 + b"]" * 5000)
    assert response.status_code == 400
    assert the_error(response)["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_body_over_the_limit_is_refused_with_413_declared_or_chunked(api: LiveApi) -> None:
    query = json.dumps({"query": "#" + "x" * LIMIT + "\n{ __typename }"}).encode()
    declared = post(api, query)
    assert declared.status_code == 413
    assert "limit of 16384 bytes" in the_error(declared)["message"]

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(query), 16 * 1024):
            yield query[i:i + 16 * 1024]

    chunked = post(api, chunks())
    assert chunked.status_code == 413
    assert the_error(chunked)["extensions"] == {"code": "BAD_USER_INPUT"}
    # Just under the limit is served.
    fits = json.dumps({"query": "#" + "x" * (LIMIT - 100) + "\n{ __typename }"}).encode()
    assert post(api, fits).json() == {"data": {"__typename": "Query"}}


def test_a_query_string_over_the_limit_is_refused_with_414(api: LiveApi) -> None:
    response = httpx.get(f"{api.url}/graphql", params={"query": "{ __typename }" + " " * LIMIT},
                         headers={"accept": "application/json"})
    assert response.status_code == 414
    assert the_error(response)["extensions"] == {"code": "BAD_USER_INPUT"}


def test_a_huge_string_argument_is_not_echoed_whole(api: LiveApi) -> None:
    big = "x" * (LIMIT - 1000)
    query = f'{{ candles(exchange: "{big}", symbol: "BTC-USDT", timeframe: "1s") {{ ts }} }}'
    response = post(api, json.dumps({"query": query}).encode())
    error = the_error(response)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "exchange"}
    assert len(error["message"]) <= MAX_MESSAGE
    assert error["message"].startswith("Argument 'exchange': expected lower-case")
    assert len(response.content) < 3 * MAX_MESSAGE


@pytest.mark.parametrize("query", [
    "{ strategies { name }",  # a syntax error
    "{" + " ".join(f"a{i}: __typename" for i in range(700)) + "}",  # over 2,000 tokens
    "{" + "a " * 2100 + "}",
])
def test_syntax_and_token_limit_errors_carry_a_code(api: LiveApi, query: str) -> None:
    error = the_error(post(api, json.dumps({"query": query}).encode()))
    assert error["message"].startswith("Syntax Error")
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


async def test_a_legacy_socket_that_never_initialises_is_closed_with_4408(api: LiveApi) -> None:
    async with websockets.connect(f"{api.ws_url}/graphql", subprotocols=[LEGACY_WS]) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_a_legacy_message_that_is_not_an_object_closes_the_socket_with_4400(
    api: LiveApi,
) -> None:
    client = await GraphQLWs.connect(api.ws_url, protocol=LEGACY_WS)
    await client.ws.send("[1, 2]")
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    # The server is fine: a new socket works.
    again = await GraphQLWs.connect(api.ws_url, protocol=LEGACY_WS)
    await again.close()


async def test_websockets_over_the_cap_are_refused_until_one_closes(api: LiveApi) -> None:
    clients = [await GraphQLWs.connect(api.ws_url) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await GraphQLWs.connect(api.ws_url)
    assert refused.value.response.status_code == 403
    await clients.pop().close()
    fourth = await eventually(lambda: _connect_if_room(api), timeout_s=5,
                              what="room for a socket once one closed")
    for client in [*clients, fourth]:
        await client.close()


async def _connect_if_room(api: LiveApi) -> GraphQLWs | None:
    try:
        return await GraphQLWs.connect(api.ws_url)
    except InvalidStatus:
        return None  # the server has not seen the close yet


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


async def test_memory_stays_bounded_under_silent_sockets_and_oversized_requests(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update({"CANDLEGRAPH_NATS_URL": nats_server.url, "CANDLEGRAPH_PORT": str(port),
                "CANDLEGRAPH_DATA_DIR": str(tmp_path), "CANDLEGRAPH_LOG_LEVEL": "INFO",
                "CANDLEGRAPH_WS_INIT_TIMEOUT_S": "60", "CANDLEGRAPH_BACKTEST_WORKERS": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]  # stderr=PIPE: never None
                              daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    silent: list[websockets.ClientConnection] = []
    try:
        wait_until(lambda: _serving(url), timeout_s=30, what="candlegraph serve")
        async with httpx.AsyncClient(timeout=30) as client:
            # Warm up every path once, so the baseline includes what any request allocates.
            await client.post(f"{url}/graphql", json={"query": "{ symbols { symbol } }"})
            before = peak_rss_mb(proc.pid)
            silent = [await websockets.connect(f"ws://127.0.0.1:{port}/graphql",
                                               subprotocols=[protocol])
                      for protocol in [LEGACY_WS, TRANSPORT_WS] * 50]
            big = "x" * (8 * 1024 * 1024)

            async def chunks() -> AsyncIterator[bytes]:
                body = json.dumps({"query": f'{{ candles(exchange: "{big}") {{ ts }} }}'})
                data = body.encode()
                for i in range(0, len(data), 256 * 1024):
                    yield data[i:i + 256 * 1024]

            async def oversized(chunked: bool) -> int:
                content: bytes | AsyncIterator[bytes] = (
                    chunks() if chunked else json.dumps({"query": big}).encode()
                )
                try:
                    response = await client.post(
                        f"{url}/graphql", content=content,
                        headers={"content-type": "application/json"})
                except httpx.TransportError:
                    return 413  # refused before the client finished sending
                return response.status_code

            statuses = await asyncio.gather(*(oversized(i % 2 == 0) for i in range(24)))
            assert set(statuses) == {413}
            small = await client.post(f"{url}/graphql", json={"query": "{ __typename }"})
            assert small.json() == {"data": {"__typename": "Query"}}
            growth = peak_rss_mb(proc.pid) - before
        assert proc.poll() is None
        assert growth < 40, f"peak RSS grew {growth:.0f} MB"
        assert max(len(line) for line in lines) < 5000, "no log line quotes a whole request"
    finally:
        for ws in silent:
            await ws.close()
        proc.terminate()
        proc.wait(timeout=20)


def _serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
