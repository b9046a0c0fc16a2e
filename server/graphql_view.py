"""`CandleGraphQL`: Strawberry's ASGI app with our context, access gate, GraphiQL page and
limits on what a client may send.

Limits, so that no request can stall or crash the server:
- a request body (or a GET query string) over `max_request_bytes` is refused with 413 (414)
  before it is read whole, and websocket frames over the same size are refused by uvicorn
  (`ws_max_size`, set where uvicorn is configured);
- a body that is not UTF-8 JSON gets 400; every refusal of the HTTP layer is a GraphQL error
  response (`{"errors": [{"message": ..., "extensions": {"code": "BAD_USER_INPUT"}}]}`),
  never Strawberry's plain text or a 500;
- at most `max_websockets` websockets are open at once; one more is refused before its
  handshake completes (HTTP 403);
- a socket that does not send `connection_init` within `connection_init_wait_timeout` is
  closed with 4408, for the legacy `graphql-ws` protocol as Strawberry already does for
  `graphql-transport-ws`; a legacy message that is not a JSON object with a `type` closes
  the socket with 4400.
Error messages and the log lines quoting them are cut to a bounded length
(`graphql_schema.guard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

import msgspec
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage
from strawberry.types.unset import UNSET, UnsetType

from graphql_schema.context import Context
from server.auth import Caller, Gate


class _BodyTooLarge(Exception):
    pass


class LegacyWsHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol, closing sockets that never initialise (4408) and
    refusing messages that are not operation objects (4400)."""

    async def handle(self) -> None:
        watchdog = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_message(self, message: OperationMessage) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.websocket.close(code=4400, reason="Expected an operation message object")
            return
        await super().handle_message(message)


class CandleGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with our context, our access gate and our offline GraphiQL page."""

    graphql_ws_handler_class = LegacyWsHandler

    def __init__(
        self, *args: Any, page: str, gate: Gate, max_request_bytes: int, max_websockets: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._page = page
        self._gate = gate
        self._max_request_bytes = max_request_bytes
        self._max_websockets = max_websockets
        self.open_websockets = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        limit = self._max_request_bytes
        if len(scope.get("query_string", b"")) > limit:
            await _error(414, f"The query string is over the limit of {limit} bytes.",
                         scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            await _error(413, f"The request body is over the limit of {limit} bytes.",
                         scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            # A chunked body has no length up front: count it as it arrives.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
            return message

        try:
            response = await self.run(Request(scope, receive=bounded_receive))
        except HTTPException as error:
            await _error(error.status_code, error.reason, scope, receive, send)
            return
        except _BodyTooLarge:
            await _error(413, f"The request body is over the limit of {limit} bytes.",
                         scope, receive, send)
            return
        await response(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.open_websockets >= self._max_websockets:
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        self.open_websockets += 1
        try:
            await self.run(WebSocket(scope, receive=receive, send=send))
        finally:
            self.open_websockets -= 1

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry turns a JSONDecodeError into "400: Unable to parse" (and over websockets
        # ignores the message); bytes that are not UTF-8, or JSON nested past Python's
        # recursion limit, raise other errors that would become a 500.
        try:
            return json.loads(data)
        except (UnicodeDecodeError, RecursionError) as error:
            raise json.JSONDecodeError(f"not UTF-8 JSON: {type(error).__name__}", "", 0) from error

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        caller = self._gate.caller(request.headers.get("authorization"))
        return dataclasses.replace(request.state.context, access=caller, connection_params=None)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # Browsers cannot set headers on a websocket: the key may come in connection_init.
        caller = context.access
        assert isinstance(caller, Caller)
        caller.present_connection_params(context.connection_params)
        if caller.refused is not None:
            raise ConnectionRejectionError({"message": caller.refused})
        return UNSET

    def encode_json(self, data: object) -> str:
        # msgspec is several times faster than json.dumps; text, because a websocket frame of
        # bytes would be a binary one.
        return msgspec.json.encode(data).decode()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._page)


async def _error(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    body = msgspec.json.encode(
        {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}
    )
    await Response(body, status_code=status, media_type="application/json")(scope, receive, send)
