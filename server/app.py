"""The Starlette application: GraphQL (with GraphiQL), the web client, health, readiness and
metrics.

Shared clients (the NATS connection, the store, the candle fan-out) are opened in the lifespan
and reach requests through `request.state`, never through module globals. Each request (or
websocket) gets its own GraphQL context, holding who the caller is (`server.auth`). Every
response carries an `X-Request-ID` (`server.logs`); CORS is on only for configured origins.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from db.store import Store
from flows.nats_events import connect, finish
from graphql_schema.context import Context, Limits
from graphql_schema.schema import build_schema
from server.auth import ApiKeys, Gate
from server.backtest_queue import JetStreamQueue
from server.backtest_worker import BacktestWorker
from server.fanout import CandleFanout
from server.flow_reports import FlowReports
from server.flowlag import FlowLag
from server.graphql_view import CandleGraphQL
from server.logs import RequestIds
from server.metrics import Metrics
from server.ratelimit import Rate
from server.settings import Settings
from server.stores import open_store
from server.user_strategies import load_strategies
from server.worker_metrics import WorkerMetrics
from strategies.service import BacktestService

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
GRAPHQL_PATH = "/graphql"
# The web client (server/static/web) talks to this origin only: its modules, /graphql and its
# websocket. Scripts are never inline, so an injected string cannot run.
WEB_CLIENT_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

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
    {
        "query": """# Markets with stored candles, their time span and last price
query Symbols {
  symbols { exchange symbol firstTs lastTs lastPrice }
}
""",
    },
    {
        "query": """# Five-minute candles as columns, for a chart (ts in epoch ms)
query ChartSeries {
  candleSeries(exchange: "sim", symbol: "BTC-USDT", timeframe: "5m", limit: 500) {
    ts open high low close volume
  }
}
""",
    },
    {
        "query": """# Strategies a backtest can run, with their parameters and where each came from
query Strategies {
  strategies {
    name summary direction source { kind file distribution entryPoint }
    parameters { name type default minimum maximum }
  }
}
""",
    },
    {
        "query": """# Backtest EMA crossover on the simulator's 1-second candles (the variables
# span a day either side of the server's start). Then see it in BacktestResult.
mutation RunBacktest($start: DateTime!, $end: DateTime!) {
  runBacktest(input: {
    exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", strategy: "ema_cross",
    start: $start, end: $end, params: {fast: 5, slow: 20}, takerFee: 0.001
  }) { id status }
}
""",
        "variables": "__AROUND_START__",
    },
    {
        "query": """# Recent backtests: status, metrics, first trades (backtest(id:) gives one)
query BacktestResult {
  backtests(limit: 5) {
    items {
      id status strategy progress error
      metrics { totalReturn sharpe maxDrawdown tradeCount winRate }
      trades(limit: 3) { side entryTime exitTime pnl }
    }
  }
}
""",
    },
    {
        "query": """# Live candles, forming and closed (press play, then stop).
# With since: "<ISO time>" it first replays the stored candles from then on.
subscription LiveCandles {
  candles(exchange: "sim", symbol: "ETH-USDT", timeframe: "1s") {
    ts open high low close volume closed
  }
}
""",
    },
]


def graphiql_page(now: datetime | None = None) -> str:
    template = (STATIC / "graphiql.html").read_text()
    now = now or datetime.now(UTC)
    around = json.dumps({
        "start": (now - timedelta(days=1)).isoformat(timespec="seconds"),
        "end": (now + timedelta(days=1)).isoformat(timespec="seconds"),
    }, indent=2)
    tabs = [
        {**tab, "variables": around} if tab.get("variables") == "__AROUND_START__" else tab
        for tab in EXAMPLE_QUERIES
    ]
    # JSON inside a <script>: escape "<" so no string can close the element.
    examples = json.dumps(tabs).replace("<", "\\u003c")
    return template.replace("__EXAMPLES__", examples)


def create_app(
    settings: Settings, *, store_factory: Callable[[Settings], Store] = open_store
) -> ASGIApp:
    metrics = Metrics()
    flow_lag = FlowLag()
    metrics.registry.register(flow_lag)
    flow_reports = FlowReports()
    metrics.registry.register(flow_reports)
    gate = Gate(
        ApiKeys(settings.api_keys),
        public_queries=settings.public_queries,
        mutation_rate=Rate.parse(settings.mutation_rate),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        store = store_factory(settings)
        nc = await connect(
            settings.nats_url, name="candlegraph-server", max_reconnect_attempts=-1
        )
        fanout = CandleFanout(nc, capacity=settings.subscription_buffer, metrics=metrics.fanout)
        await flow_lag.watch(nc)
        await flow_reports.watch(nc)
        queue = JetStreamQueue(nc)
        await queue.start()
        strategies = load_strategies(settings)
        backtests = BacktestService(
            store, queue, timeframes=settings.timeframes, sweep_max_runs=settings.sweep_max_runs,
            registry=strategies,
        )
        # Backtests run in `candlegraph worker` processes; this server runs some itself only
        # when asked (`serve --workers N`).
        stop_worker = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        if settings.backtest_workers:
            worker = asyncio.create_task(BacktestWorker(
                settings, nc, store, concurrency=settings.backtest_workers,
                metrics=WorkerMetrics(metrics.registry), registry=strategies,
            ).run(stop_worker))
            worker.add_done_callback(_report_worker_end)
        # Per request, `CandleGraphQL.get_context` replaces `access` with the caller's.
        context = Context(
            store=store,
            feed=fanout,
            limits=Limits(timeframes=settings.timeframes, max_candles=settings.max_candles),
            access=gate.caller(None),
            backtests=backtests,
        )
        try:
            yield {"context": context, "nc": nc, "store": store, "fanout": fanout}
        finally:
            stop_worker.set()
            if worker is not None:
                await asyncio.gather(worker, return_exceptions=True)
            await flow_lag.stop()
            await flow_reports.stop()
            await fanout.close()
            await finish(nc)
            store.close()

    graphql = CandleGraphQL(
        build_schema(observer=metrics),
        page=graphiql_page(),
        gate=gate,
        max_request_bytes=settings.max_request_bytes,
        max_websockets=settings.max_websockets,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_s),
        allowed_origins=settings.cors_origins,
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
        return FileResponse(
            STATIC / "web" / "index.html", headers={"Content-Security-Policy": WEB_CLIENT_POLICY}
        )

    site = Starlette(
        routes=[
            Route("/", root),
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics.endpoint),
            Mount("/graphiql-assets", StaticFiles(directory=STATIC / "graphiql")),
            Mount("/web", StaticFiles(directory=STATIC / "web")),
        ],
        lifespan=lifespan,
    )
    app: ASGIApp = GraphQLFirst(graphql, site)
    for middleware in reversed(_middleware(settings)):
        app = middleware.cls(app, *middleware.args, **middleware.kwargs)
    return app


class GraphQLFirst:
    """`/graphql` straight to Strawberry (which answers its own errors), the rest to Starlette.

    Starlette's router and its two exception middlewares cost ~30 µs a request, a twentieth of a
    small query; the endpoint that takes nearly all the traffic goes around them.
    """

    def __init__(self, graphql: ASGIApp, site: ASGIApp) -> None:
        self._graphql = graphql
        self._site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") == GRAPHQL_PATH and scope["type"] in {"http", "websocket"}:
            await self._graphql(scope, receive, send)
        else:
            await self._site(scope, receive, send)


def _middleware(settings: Settings) -> list[Middleware]:
    # The request id is outermost, so even a CORS preflight answer carries it.
    middleware = [Middleware(RequestIds)]
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        ))
    return middleware


def _report_worker_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the server's backtest worker failed", exc_info=task.exception())


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
