"""Fixtures shared by the flow tests that run against a real NATS server."""

from __future__ import annotations

import contextlib

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from flows.streams import ensure_streams


@pytest.fixture
async def nc(nc: Client) -> Client:
    """The shared client (tests/conftest.py), on fresh TRADES and DEADLETTER streams (no
    messages, no consumers)."""
    js = nc.jetstream()
    for stream in ("TRADES", "DEADLETTER"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    await ensure_streams(js)
    return nc
