"""A NATS connection's events as a few log lines, on a real server killed and restarted."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from flows.nats_events import ConnectionLog, connect, finish
from tests.conditions import eventually
from tests.servers import NatsServer


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "flows.nats_events"]


async def test_an_outage_is_one_line_down_one_error_line_and_one_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flows.nats_events")
    server = NatsServer(tmp_path / "nats")
    back = asyncio.Event()

    async def on_back() -> None:
        back.set()

    nc = Client()
    events = ConnectionLog(nc, "test-conn", every_s=60, on_reconnected=on_back)
    # nats-py's annotation says int; it takes seconds as a float, as `nats.connect` passes on.
    quick: dict[str, Any] = {"reconnect_time_wait": 0.05, "max_reconnect_attempts": -1}
    await nc.connect(server.url, name="test-conn", **quick, **events.callbacks())
    try:
        server.kill()
        # Every attempt while the server is away fails; they are counted, not logged.
        async def failing() -> bool:
            return events.left_out >= 5

        await eventually(failing, timeout_s=30, what="reconnect attempts failing")
        failed = events.left_out
        server.start()
        await asyncio.wait_for(back.wait(), 30)
        lines = _lines(caplog)
        assert not any(r.exc_info for r in lines), "no traceback for an expected outage"
        messages = [r.getMessage() for r in lines]
        assert len(messages) == 3, messages  # lost, one error line, back
        assert "NATS connection test-conn lost; reconnecting" in messages[:2]
        errors = [r for r in lines if r.getMessage().startswith("NATS connection test-conn: ")]
        assert len(errors) == 1 and errors[0].levelno == logging.WARNING
        last = lines[-1].getMessage()
        assert last.startswith("NATS connection test-conn back (")
        assert int(last.split("(")[1].split()[0]) >= failed
        assert events.left_out == 0
        # The connection works again.
        sub = await nc.subscribe("echo")
        await nc.publish("echo", b"hi")
        assert (await sub.next_msg(timeout=5)).data == b"hi"
    finally:
        await nc.close()
        server.stop()
    closing = _lines(caplog)[-1]
    assert (closing.getMessage(), closing.levelno) == (
        "NATS connection test-conn closed", logging.DEBUG)


async def test_any_other_error_is_logged_with_its_traceback(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flows.nats_events")
    nc = await connect(nats_url, name="test-callback")

    async def broken(msg: Msg) -> None:
        raise ValueError(f"cannot handle {msg.data!r}")

    try:
        await nc.subscribe("broken", cb=broken)
        await nc.publish("broken", b"x")
        async def logged() -> bool:
            return bool(_lines(caplog))

        await eventually(logged, timeout_s=10, what="the error logged")
    finally:
        await nc.close()
    record = _lines(caplog)[0]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "NATS connection test-callback: ValueError: cannot handle b'x'"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


async def test_finish_drains_a_connection_and_closes_one_whose_server_is_away(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path / "nats")
    try:
        healthy = await connect(server.url, name="test-healthy")
        got: list[bytes] = []

        async def on_msg(msg: Msg) -> None:
            got.append(msg.data)

        await healthy.subscribe("drained", cb=on_msg)
        await healthy.publish("drained", b"last")
        await finish(healthy)  # drained: the message published before it is delivered
        assert healthy.is_closed and got == [b"last"]

        away = await connect(server.url, name="test-away", max_reconnect_attempts=-1,
                             reconnect_time_wait=0.05)
        server.kill()

        async def reconnecting() -> bool:
            return away.is_reconnecting

        await eventually(reconnecting, timeout_s=10, what="the connection reconnecting")
        with pytest.raises(nats.errors.ConnectionReconnectingError):
            await away.drain()  # what `finish` meets
        await asyncio.wait_for(finish(away), 10)
        assert away.is_closed
    finally:
        server.stop()
