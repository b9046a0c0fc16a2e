"""Clients for tests: GraphQL over HTTP and over a websocket (both protocols), and a Prometheus
scrape."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets import Subprotocol

from tests.servers import UvicornServer

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
LEGACY_WS = Subprotocol("graphql-ws")


def post(api: UvicornServer, query: str, **variables: Any) -> dict[str, Any]:
    """POST one GraphQL request to `api`; the decoded response body."""
    response = httpx.post(
        f"{api.url}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    return response.json()


class GraphQLWs:
    """One websocket to `/graphql`, acknowledged, speaking `protocol`.

    `stalled=True` makes a client that reads nothing until told: a tiny kernel receive buffer
    and a one-frame library queue, so the server's sends back up after a few kilobytes.
    """

    def __init__(self, ws: websockets.ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        protocol: Subprotocol = TRANSPORT_WS,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stalled: bool = False,
    ) -> GraphQLWs:
        host, port = base_url.removeprefix("ws://").split(":")
        sock = socket.socket()
        if stalled:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        ws = await websockets.connect(
            f"{base_url}/graphql", sock=sock, subprotocols=[protocol],
            additional_headers=headers, compression=None, max_queue=1 if stalled else 1024,
        )
        client = cls(ws, protocol)
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        ack = await client.receive()
        if ack.get("type") != "connection_ack":
            raise AssertionError(f"expected connection_ack, got {ack}")
        return client

    async def subscribe(
        self, query: str, *, id: str = "1", variables: dict[str, Any] | None = None
    ) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": id, "type": kind, "payload": payload}))

    async def receive(self, timeout_s: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("type") not in {"ka", "ping", "pong"}:
                    return message

    async def candle(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """The next candle pushed (either protocol); fails on anything else."""
        message = await self.receive(timeout_s)
        if message.get("type") not in {"next", "data"} or message["payload"].get("errors"):
            raise AssertionError(f"expected a candle, got {message}")
        return message["payload"]["data"]["candles"]

    async def close(self) -> None:
        await self.ws.close()

    def drop(self) -> None:
        """Vanish without a close frame, as a client whose network goes away."""
        self.ws.transport.abort()


def errors_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The GraphQL errors of an `error`, `next` or `data` message."""
    payload = message["payload"]
    if message["type"] == "error":
        return payload if isinstance(payload, list) else [payload]
    return payload["errors"]


async def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`, keyed by (name, sorted labels)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base_url}/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def metric(base_url: str, name: str, **labels: str) -> float:
    """One sample's value, 0.0 when it does not exist yet."""
    return (await scrape(base_url)).get((name, tuple(sorted(labels.items()))), 0.0)
