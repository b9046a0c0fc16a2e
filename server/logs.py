"""Logs: one JSON object per line, each tagged with the id of the request it belongs to.

A request (HTTP or websocket) takes its id from `X-Request-ID` when that is a plain token of
up to 128 characters, or gets a new one; the id is returned as the `X-Request-ID` response
header and held in a contextvar, so every line logged while serving the request carries it
(tasks started by the request inherit it). The formatter is written here with the standard
library (python-json-logger would do the same); fields passed with `extra=` are included.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The ASGI messages that start a response, and so carry its headers.
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid is not None:
            line["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "request_id":
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line, enc_hook=str).decode()


def configure_logging(level: str, log_format: str) -> None:
    """Send every logger's output to stderr, as JSON lines or as plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # What no line shows need not be gathered for every line (the logging HOWTO's
    # "Optimization"): the caller's frame, thread, process and task names. The request log
    # line costs half as much without them.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # new in 3.12; typeshed lacks it
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings become log lines too


class RequestIds:
    """ASGI middleware: the request id, the response header, and one log line per request."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.log = logger or logging.getLogger("candlegraph.requests")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = offered if _VALID_ID.match(offered) else os.urandom(16).hex()  # as uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in _STARTS:
                status = message.get("status", 101)
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.log.info(
                "%s %s %s", scope.get("method", "WEBSOCKET"), scope["path"], status,
                extra={"status": status,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 3)},
            )
            request_id.reset(token)
