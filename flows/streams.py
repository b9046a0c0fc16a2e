"""JetStream stream set-up shared by producers and the flow: idempotent, safe to race."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from flows.subjects import (
    DEADLETTER_STREAM,
    DEADLETTER_SUBJECT,
    TRADES_STREAM,
    TRADES_SUBJECTS,
)

_DAY_S = 86400.0


async def ensure_streams(js: JetStreamContext, *, trades_max_age_s: float = 7 * _DAY_S) -> None:
    """Create the TRADES and DEADLETTER streams unless they exist."""
    streams = ((TRADES_STREAM, TRADES_SUBJECTS), (DEADLETTER_STREAM, DEADLETTER_SUBJECT))
    for name, subjects in streams:
        await _ensure(js, StreamConfig(
            name=name,
            subjects=[subjects],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            max_age=trades_max_age_s,
        ))


async def _ensure(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Another process created it between our look-up and our create.
        await js.stream_info(config.name or "")
