"""Waiting on a condition with a timeout: how tests wait, instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import pytest


def wait_until[T](
    predicate: Callable[[], T | Literal[False] | None], *, timeout_s: float = 10.0, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout_s`.

    Returns that value: never the None or False the predicate gives while it waits.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.02)


async def eventually[T](
    predicate: Callable[[], Awaitable[T | Literal[False] | None]], *, timeout_s: float = 10.0,
    what: str = "",
) -> T:
    """The asyncio form of `wait_until`, for predicates that must await."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)
