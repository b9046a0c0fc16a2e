"""Subscriptions over real websockets: both protocols, fed by candles published on NATS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import websockets
from nats.aio.client import Client

from market.messages import Candle, encode
from tests.graphql.conftest import T0
from tests.servers import NatsServer, UvicornServer

SUBSCRIPTION = """subscription {
  candles(exchange: "sim", symbol: "SOL-USDT", timeframe: "1s") { ts close volume closed }
}"""


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.drain()


async def publish_until_received(
    nc: Client, candle: Candle, receive: asyncio.Task[dict[str, Any]]
) -> dict[str, Any]:
    """Publish until the subscriber has it: its NATS subscription starts asynchronously."""
    async with asyncio.timeout(10):
        while not receive.done():
            await nc.publish("candles.sim.SOL-USDT.1s", encode(candle))
            await asyncio.wait({receive}, timeout=0.05)
    return receive.result()


async def receive_json(ws: websockets.ClientConnection) -> dict[str, Any]:
    return json.loads(await ws.recv())


async def test_graphql_transport_ws_subscription_receives_live_candles(
    api: UvicornServer, nc: Client
) -> None:
    candle = Candle("sim", "SOL-USDT", "1s", T0, 150.0, 151.0, 149.0, 150.5, 12.5, 7, 150.2, False)
    async with websockets.connect(
        f"{api.ws_url}/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await receive_json(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION}}))
        message = await publish_until_received(nc, candle, asyncio.create_task(receive_json(ws)))
    assert message == {
        "id": "1", "type": "next",
        "payload": {"data": {"candles": {
            "ts": "2023-11-14T22:14:00+00:00", "close": 150.5, "volume": 12.5, "closed": False,
        }}},
    }


async def test_legacy_graphql_ws_subscription_receives_live_candles(
    api: UvicornServer, nc: Client
) -> None:
    candle = Candle("sim", "SOL-USDT", "1s", T0, 150.0, 151.0, 149.0, 150.5, 12.5, 7, 150.2, True)
    async with websockets.connect(f"{api.ws_url}/graphql", subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await receive_json(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "7", "type": "start", "payload": {"query": SUBSCRIPTION}}))
        message = await publish_until_received(nc, candle, asyncio.create_task(receive_json(ws)))
    assert message["type"] == "data" and message["id"] == "7"
    assert message["payload"]["data"]["candles"]["closed"] is True


async def test_subscribing_with_a_bad_timeframe_is_an_error_not_a_silent_stream(
    api: UvicornServer,
) -> None:
    query = 'subscription { candles(exchange: "sim", symbol: "SOL-USDT", timeframe: "7s") { ts } }'
    async with websockets.connect(
        f"{api.ws_url}/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await receive_json(ws)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        async with asyncio.timeout(5):
            message = await receive_json(ws)
    assert message["type"] in {"error", "next"}
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["argument"] == "timeframe"
