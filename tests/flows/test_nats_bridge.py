"""The bridge between Bytewax's threads and nats-py's event loop, on a real NATS server."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flows.nats_bridge import NatsBridge
from tests.conditions import wait_until


def test_a_background_task_that_fails_is_logged_when_it_fails(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = NatsBridge(nats_url, name="candlegraph-test-bridge")
    ran = []

    async def fails() -> None:
        ran.append(True)
        raise RuntimeError("the puller broke")

    try:
        with caplog.at_level(logging.ERROR, logger="flows.nats_bridge"):
            bridge.spawn(fails)
            wait_until(lambda: any(r.exc_info for r in caplog.records), timeout_s=10,
                       what="the failure logged")
        record = next(r for r in caplog.records if r.exc_info)
        assert ran == [True]
        assert "candlegraph-test-bridge" in record.getMessage()
        assert record.exc_info is not None and "the puller broke" in str(record.exc_info[1])
        # The bridge itself goes on working.
        assert bridge.call(lambda: asyncio.sleep(0, result=7)) == 7
    finally:
        bridge.close()
