"""A nats-py connection on its own event-loop thread, for Bytewax's synchronous callbacks.

Bytewax calls sources and sinks from plain threads, while nats-py is asyncio only. The bridge
owns one loop in a daemon thread; `call` runs a coroutine there and waits for its result,
`submit` starts one and returns its future.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext

from flows.nats_events import connect, finish

T = TypeVar("T")

log = logging.getLogger(__name__)


class NatsBridge:
    """Connects at construction; raises the connection error if the server is unreachable."""

    def __init__(self, url: str, *, name: str, connect_timeout_s: float = 5.0) -> None:
        self._reconnected: list[Callable[[], None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self.nc: Client = self.call(
            lambda: connect(
                url,
                name=name,
                on_reconnected=self._on_reconnected,
                connect_timeout=connect_timeout_s,
                max_reconnect_attempts=-1,
                # A restarted server is found within half a second (nats-py waits 2 s).
                reconnect_time_wait=0.5,
                pending_size=1024 * 1024,
            ),
            timeout=connect_timeout_s + 5,
        )
        self.js: JetStreamContext = self.nc.jetstream()

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the bridge's loop each time the connection is re-established."""
        self._reconnected.append(callback)

    async def _on_reconnected(self) -> None:
        for callback in self._reconnected:
            callback()

    def call(self, make: Callable[[], Awaitable[T]], *, timeout: float = 30.0) -> T:
        """Run the coroutine `make()` on the bridge's loop and return its result."""
        return self.submit(make).result(timeout)

    def submit(self, make: Callable[[], Awaitable[T]]) -> Future[T]:
        """Start the coroutine `make()` on the bridge's loop; its future holds the result."""

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    def spawn(self, make: Callable[[], Awaitable[None]]) -> None:
        """Start a background task on the bridge's loop. A task that fails is logged with its
        traceback when it fails (asyncio would say so only when the task is collected)."""

        async def run() -> None:
            try:
                await make()
            except Exception:
                log.exception("a background task of %s failed", self._thread.name)
                raise

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(run()))

    def close(self) -> None:
        """Cancel background tasks, drain the connection and stop the loop thread."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await finish(self.nc)

        try:
            self.call(shutdown, timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
