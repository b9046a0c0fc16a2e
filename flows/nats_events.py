"""NATS connections whose events are a few plain log lines, not a traceback per reconnect attempt.

nats-py's default error callback logs every error with its traceback at ERROR. While the
server is away that is one traceback per reconnect attempt (every half second here) per
connection, for an expected, handled condition. `connect` opens a connection whose events
are logged by `ConnectionLog` instead:

- the connection lost (WARNING), back (INFO), closed (DEBUG);
- connection errors (refused, reset, unexpected EOF, ...) as one line, at most one every
  `every_s` seconds, with how many were left out;
- any other error (an exception in a subscription's callback, a slow consumer) at ERROR with
  its traceback, as nats-py would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (
    OSError, nats.errors.StaleConnectionError, nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
)


async def connect(
    url: str,
    *,
    name: str,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
    **options: Any,
) -> Client:
    """`nats.connect(url, name=name, **options)`, its events logged by `ConnectionLog`."""
    nc = Client()
    events = ConnectionLog(nc, name, on_reconnected=on_reconnected)
    await nc.connect(url, name=name, **events.callbacks(), **options)
    return nc


async def finish(nc: Client) -> None:
    """Drain `nc` (pending messages out, subscriptions done); a connection that cannot drain,
    its server away or being reconnected to, is closed instead, so a process stops cleanly
    whatever NATS is doing."""
    try:
        await nc.drain()
    except (nats.errors.Error, OSError) as error:
        log.debug("NATS connection not drained (%s): closing it", _describe(error))
        await nc.close()


class ConnectionLog:
    """Logs the events of the connection `nc`, called `name`; `on_reconnected` runs after each
    return of the connection."""

    def __init__(
        self,
        nc: Client,
        name: str,
        *,
        every_s: float = 10.0,
        on_reconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.nc = nc
        self.name = name
        self._every_s = every_s
        self._on_reconnected = on_reconnected
        self._logged_at: float | None = None
        self.left_out = 0  # connection errors not logged since the last line about them

    def callbacks(self) -> dict[str, Any]:
        """The callbacks, as keyword arguments of `Client.connect`."""
        return {
            "error_cb": self.error,
            "disconnected_cb": self.disconnected,
            "reconnected_cb": self.reconnected,
        }

    async def error(self, error: Exception) -> None:
        if not isinstance(error, _CONNECTION_ERRORS):
            log.error("NATS connection %s: %s", self.name, _describe(error), exc_info=error)
            return
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < self._every_s:
            self.left_out += 1
            return
        log.warning("NATS connection %s: %s%s", self.name, _describe(error), self._left_out())
        self._logged_at = now

    async def disconnected(self) -> None:
        if self.nc.is_closed:
            log.debug("NATS connection %s closed", self.name)
        else:
            log.warning("NATS connection %s lost; reconnecting", self.name)

    async def reconnected(self) -> None:
        log.info("NATS connection %s back%s", self.name, self._left_out())
        self._logged_at = None  # the next outage's first error is logged at once
        if self._on_reconnected is not None:
            await self._on_reconnected()

    def _left_out(self) -> str:
        """The count of connection errors left out since the last line, then zero."""
        count, self.left_out = self.left_out, 0
        return f" ({count} more connection errors since the last line)" if count else ""


def _describe(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
