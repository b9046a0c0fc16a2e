"""API keys over real HTTP and websockets: on and off, queries open or closed, rate limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets import Subprotocol

from graphql_schema.context import Context, Limits
from graphql_schema.schema import build_schema
from market.messages import encode
from server.auth import ApiKeys, Gate, digest
from server.ratelimit import Rate
from tests.conditions import eventually
from tests.graphql.clients import LEGACY_WS, TRANSPORT_WS, GraphQLWs, errors_of, metric
from tests.graphql.live import S, closed_candle, serve
from tests.servers import LiveApi, NatsServer, UvicornServer

KEY = "cg_alice_test_key_not_a_secret"
KEYS = (f"alice:{digest(KEY)}", f"bob:{digest('cg_bob_test_key')}")
T0 = 1_700_000_040 * S
SYMBOLS = "{ symbols { symbol } }"
MUTATION = 'mutation { cancelBacktest(id: "no-such-run") { id } }'
SUBSCRIPTION = ('subscription { candles(exchange: "sim", symbol: "SOL-USDT", timeframe: "1s") '
                "{ trades } }")


@pytest.fixture(scope="module")
def closed_api(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer
) -> Iterator[LiveApi]:
    server = serve(tmp_path_factory.mktemp("closed"), nats_server.url,
                   [closed_candle("SOL-USDT", T0)],
                   api_keys=KEYS, public_queries=False, mutation_rate="2/min")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_api(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer
) -> Iterator[LiveApi]:
    server = serve(tmp_path_factory.mktemp("open"), nats_server.url,
                   [closed_candle("SOL-USDT", T0)], api_keys=KEYS)
    yield server
    server.stop()


def post(api: LiveApi | UvicornServer, query: str, key: str | None = None,
         authorization: str | None = None) -> dict[str, Any]:
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(f"{api.url}/graphql", json={"query": query}, headers=headers).json()


def code_of(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    return error["extensions"]["code"]


def test_closed_queries_need_a_recognised_key(closed_api: LiveApi) -> None:
    assert code_of(post(closed_api, SYMBOLS)) == "UNAUTHENTICATED"
    assert post(closed_api, SYMBOLS)["data"] is None
    assert post(closed_api, SYMBOLS, key=KEY)["data"] == {"symbols": [{"symbol": "SOL-USDT"}]}
    wrong = post(closed_api, SYMBOLS, key="cg_guessed")
    assert code_of(wrong) == "UNAUTHENTICATED"
    assert wrong["errors"][0]["message"] == "the API key is not recognised"
    basic = post(closed_api, SYMBOLS, authorization=f"Basic {KEY}")
    assert "Authorization: Bearer <key>" in basic["errors"][0]["message"]


def test_open_queries_need_no_key_but_mutations_do(open_api: LiveApi) -> None:
    assert post(open_api, SYMBOLS)["data"] == {"symbols": [{"symbol": "SOL-USDT"}]}
    refused = post(open_api, MUTATION)
    assert code_of(refused) == "UNAUTHENTICATED"
    assert "a mutation needs an API key" in refused["errors"][0]["message"]
    assert code_of(post(open_api, MUTATION, key="cg_guessed")) == "UNAUTHENTICATED"
    # With the key, the mutation runs: this id does not exist.
    assert code_of(post(open_api, MUTATION, key=KEY)) == "NOT_FOUND"


def test_with_no_keys_configured_mutations_need_none(api: UvicornServer) -> None:
    assert code_of(post(api, MUTATION)) == "NOT_FOUND"
    assert code_of(post(api, MUTATION, key="anything")) == "NOT_FOUND"


async def test_mutations_beyond_the_rate_of_a_key_are_rate_limited(closed_api: LiveApi) -> None:
    bob_first = post(closed_api, MUTATION, key="cg_bob_test_key")
    results = [post(closed_api, MUTATION, key=KEY) for _ in range(3)]
    assert [code_of(r) for r in results] == ["NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"]
    limited = results[2]["errors"][0]
    assert 1 <= limited["extensions"]["retryAfter"] <= 30
    assert "may run 2 mutations per 60 s" in limited["message"]
    # Buckets are per key: bob has his own.
    assert code_of(bob_first) == "NOT_FOUND"
    assert code_of(post(closed_api, MUTATION, key="cg_bob_test_key")) == "NOT_FOUND"
    # Queries do not spend mutation tokens.
    assert "errors" not in post(closed_api, SYMBOLS, key=KEY)
    assert await metric(closed_api.url, "candlegraph_graphql_errors_total",
                        operation="anonymous", type="mutation", code="RATE_LIMITED") >= 1


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_subscription_without_a_key_is_refused(
    open_api: LiveApi, protocol: Subprotocol
) -> None:
    client = await GraphQLWs.connect(open_api.ws_url, protocol=protocol)
    await client.subscribe(SUBSCRIPTION)
    message = await client.receive()
    await client.close()
    assert message["type"] == "error"
    [error] = errors_of(message)
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert await metric(open_api.url, "candlegraph_subscriptions_open") == 0


@pytest.mark.parametrize(
    ("where", "protocol"),
    [("connection_init", TRANSPORT_WS), ("connection_init", LEGACY_WS),
     ("upgrade header", TRANSPORT_WS)],
)
async def test_a_subscription_with_a_key_streams(
    open_api: LiveApi, nc: Client, where: str, protocol: Subprotocol
) -> None:
    bearer = {"Authorization": f"Bearer {KEY}"}
    client = await GraphQLWs.connect(
        open_api.ws_url, protocol=protocol,
        payload=bearer if where == "connection_init" else None,
        headers=bearer if where == "upgrade header" else None,
    )
    await client.subscribe(SUBSCRIPTION)
    await eventually(lambda: _open(open_api), what="the subscription to start")
    await nc.publish("candles.sim.SOL-USDT.1s", encode(closed_candle("SOL-USDT", T0, trades=4)))
    candle = await client.candle()
    await client.close()
    assert candle == {"trades": 4}


async def _open(api: LiveApi) -> bool:
    return await metric(api.url, "candlegraph_subscriptions_open") == 1


async def test_a_wrong_key_in_connection_init_closes_the_websocket(open_api: LiveApi) -> None:
    async with websockets.connect(
        f"{open_api.ws_url}/graphql", subprotocols=[TRANSPORT_WS]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": "Bearer cg_guessed"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403

    async with websockets.connect(
        f"{open_api.ws_url}/graphql", subprotocols=[LEGACY_WS]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"authorization": "Bearer cg_guessed"}}))
        message = json.loads(await ws.recv())
    assert message == {"type": "connection_error",
                       "payload": {"message": "the API key is not recognised"}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_regains_mutations_at_its_rate() -> None:
    clock = FakeClock()
    gate = Gate(ApiKeys(KEYS), public_queries=True, mutation_rate=Rate.parse("3/min"),
                clock=clock)
    schema = build_schema()

    async def cancel() -> str:
        context = Context(store=None, feed=None, limits=Limits(timeframes=("1s",)),  # type: ignore[arg-type]  # never read: the guard refuses first
                          access=gate.caller(f"Bearer {KEY}"))
        result = await schema.execute(MUTATION, context_value=context)
        assert result.errors is not None
        return str(result.errors[0].extensions["code"])  # type: ignore[index]  # a refusal always has extensions

    assert [await cancel() for _ in range(4)][-1] == "RATE_LIMITED"
    clock.now += 19.9  # one token takes 20 s to come back
    assert await cancel() == "RATE_LIMITED"
    clock.now += 0.2
    assert await cancel() != "RATE_LIMITED"
    assert await cancel() == "RATE_LIMITED"
