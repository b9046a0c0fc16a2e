"""The Starlette application: GraphQL (with GraphiQL), health and readiness.

Shared clients (the NATS connection and the store) are opened in the lifespan and reach
requests through `request.state`, never through module globals.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from db.store import Store
from graphql_schema.context import Context, Limits
from graphql_schema.schema import build_schema
from server.feed import NatsCandleFeed
from server.settings import Settings
from server.stores import open_store

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

EXAMPLE_QUERIES = [
    {
        "query": """# Latest five 1-second candles of the simulator's BTC-USDT
query LatestCandles {
  candles(exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", limit: 5) {
    ts open high low close volume trades vwap closed
  }
}
""",
    },
    {"query": "# Markets with stored candles\nquery Symbols {\n  symbols { exchange symbol }\n}\n"},
    {
        "query": """# Live candles, forming and closed (press play, then stop)
subscription LiveCandles {
  candles(exchange: "sim", symbol: "ETH-USDT", timeframe: "1s") {
    ts open high low close volume closed
  }
}
""",
    },
]


class CandleGraphQL(GraphQL):
    """Strawberry's ASGI app with our context and our offline GraphiQL page."""

    def __init__(self, *args: Any, page: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page = page

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return request.state.context

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._page)


def graphiql_page() -> str:
    template = (STATIC / "graphiql.html").read_text()
    # JSON inside a <script>: escape "<" so no string can close the element.
    examples = json.dumps(EXAMPLE_QUERIES).replace("<", "\\u003c")
    return template.replace("__EXAMPLES__", examples)


def create_app(
    settings: Settings, *, store_factory: Callable[[Settings], Store] = open_store
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        store = store_factory(settings)
        nc = await nats.connect(
            settings.nats_url, name="candlegraph-server", max_reconnect_attempts=-1
        )
        context = Context(
            store=store,
            feed=NatsCandleFeed(nc),
            limits=Limits(timeframes=settings.timeframes, max_candles=settings.max_candles),
        )
        try:
            yield {"context": context, "nc": nc, "store": store}
        finally:
            await nc.drain()
            store.close()

    graphql = CandleGraphQL(
        build_schema(),
        page=graphiql_page(),
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
    )

    async def health(request: Request) -> JSONResponse:
        checks = await _checks(request)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks})

    async def ready(request: Request) -> JSONResponse:
        checks = await _checks(request)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    async def root(request: Request) -> Response:
        return RedirectResponse("/graphql")

    return Starlette(
        routes=[
            Route("/", root),
            Route("/health", health),
            Route("/ready", ready),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Mount("/graphiql-assets", StaticFiles(directory=STATIC / "graphiql")),
        ],
        lifespan=lifespan,
    )


async def _checks(request: Request) -> dict[str, str]:
    nc = request.state.nc
    store: Store = request.state.store
    nats_state = "ok" if nc.is_connected else "disconnected"
    try:
        await asyncio.to_thread(store.ping)
        store_state = "ok"
    except Exception as error:
        store_state = f"error: {error}"
    return {"nats": nats_state, "store": store_state}
