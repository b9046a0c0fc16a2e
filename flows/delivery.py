"""Publishing a batch of core NATS messages until the server has them, through reconnects.

The sink publishes a batch's candle updates and dead letters, flushes, then acks. A NATS server
that restarts, or a connection that reconnects, must not end the flow: nats-py drops the
pings in flight when it reconnects, so a flush waiting on one times out although the
connection is back. `publish_all` therefore retries the whole batch, after a backoff with
jitter, until a flush confirms it: a message may reach subscribers twice (candle updates
are idempotent, dead letters at least once), none is lost, and the acks that follow are sent
only after it. A message the server can never take (larger than its max_payload) is
logged and skipped rather than retried forever; dead letters are bounded so that they never
are.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

import nats.errors
from nats.aio.client import Client

log = logging.getLogger(__name__)

#: Failures a reconnect or a restarted server can cause, which a retry can mend.
TRANSIENT = (
    nats.errors.TimeoutError,  # FlushTimeoutError among them
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionReconnectingError,
    OSError,
)


def backoff_s(attempt: int, *, base_s: float = 0.1, cap_s: float = 5.0,
              rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rand() * min(cap_s, base_s * 2 ** min(attempt, 30))


async def publish_all(
    nc: Client,
    messages: Sequence[tuple[str, bytes]],
    *,
    what: str,
    flush_timeout_s: float = 5.0,
) -> int:
    """Publish `messages` in order and flush, retrying the batch until the flush succeeds.

    Returns the number of retries. Raises `nats.errors.ConnectionClosedError` only when the
    connection was closed on purpose (shutdown).
    """
    attempt = 0
    while True:
        if nc.is_closed:
            raise nats.errors.ConnectionClosedError
        # While nats-py reconnects, published messages pile up in its pending buffer; wait
        # for the connection instead of adding the batch to it once per retry.
        problem = "not connected"
        if nc.is_connected:
            try:
                for subject, data in messages:
                    try:
                        await nc.publish(subject, data)
                    except nats.errors.MaxPayloadError:
                        log.error("dropped a %d-byte message on %s: over the server's"
                                  " max_payload of %d bytes", len(data), subject[:256],
                                  nc.max_payload)
                # nats-py annotates an int, but takes any seconds (asyncio.wait_for's timeout).
                await nc.flush(flush_timeout_s)  # type: ignore[arg-type]  # seconds, as a float
                if attempt:
                    log.warning("published %s after %d retries", what, attempt)
                return attempt
            except TRANSIENT as error:
                problem = f"{type(error).__name__}: {error}"
        delay = backoff_s(attempt)
        attempt += 1
        log.warning("could not publish %s (%s); retry %d in %.2f s", what, problem, attempt,
                    delay)
        await asyncio.sleep(delay)
