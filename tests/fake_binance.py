"""A fake Binance spot exchange on 127.0.0.1: the public REST and websocket API ccxt calls.

Only the exchange is fake: ccxt (pointed here by `ccxt_config()`) makes its real requests and
parses real payloads, shaped as Binance's (see ARCHITECTURE.md, "Exchanges in tests", and
Binance's spot API docs):

- `GET /api/v3/exchangeInfo`: the markets, with PRICE_FILTER and LOT_SIZE filters;
- `GET /api/v3/aggTrades` (`fromId`, or `startTime`/`endTime`, `limit`) and `/api/v3/trades`;
- `GET /api/v3/klines` (`interval`, `startTime`, `endTime`, `limit`);
- websockets at `/stream/ws/<n>`: `SUBSCRIBE` to `<symbol>@aggTrade` or `<symbol>@trade`, then
  one message per trade.

Trades happen when a test says so (`trade`, `trades`) or at a steady rate (`run`), each with
an aggregate id (consecutive per market) and the fake's clock. Faults: `drop_sockets` closes
every websocket, `withhold` keeps trades off the stream while REST still has them, `fail_next`
answers the next REST requests 429 (or another status), `send_raw` pushes any message to the
subscribers (a malformed trade). `requests` records each REST request. The server runs on its
own event loop in a thread, so synchronous tests and other processes can use it alike;
`python -m tests.fake_binance PORT` runs it as a process of its own, driven over HTTP
(`/_control/...`) by a benchmark.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from server.processes import free_port

INTERVALS_MS = {
    "1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "1d": 86_400_000,
}


def ccxt_config_for(port: int) -> dict[str, Any]:
    """ccxt's binance config pointing every API, REST and websocket, at a fake on `port`."""
    here = f"http://127.0.0.1:{port}"
    ws = f"ws://127.0.0.1:{port}/stream/ws"
    api: dict[str, Any] = {name: f"{here}/{name}" for name in (
        "sapi", "sapiV2", "sapiV3", "sapiV4", "fapiPublic", "fapiPrivate", "dapiPublic",
        "dapiPrivate", "eapiPublic", "eapiPrivate", "v1", "private", "papi",
    )}
    api.update(public=f"{here}/api/v3", ws={"spot": ws, "margin": ws, "future": ws,
                                              "delivery": ws, "ws-api": {"spot": ws}})
    return {"urls": {"api": api}}


@dataclass(frozen=True, slots=True)
class MadeTrade:
    """One trade the fake exchange made: its aggregate trade id, ms time, price, quantity."""

    symbol: str  # Binance's id, e.g. BTCUSDT
    agg_id: int
    trade_id: int
    ts_ms: int
    price: str
    qty: str
    buyer_maker: bool

    def agg_row(self) -> dict[str, Any]:
        return {"a": self.agg_id, "p": self.price, "q": self.qty, "f": self.trade_id,
                "l": self.trade_id, "T": self.ts_ms, "m": self.buyer_maker, "M": True}

    def agg_event(self, event_ms: int) -> dict[str, Any]:
        return {"e": "aggTrade", "E": event_ms, "s": self.symbol, **self.agg_row()}

    def trade_event(self, event_ms: int) -> dict[str, Any]:
        return {"e": "trade", "E": event_ms, "s": self.symbol, "t": self.trade_id,
                "p": self.price, "q": self.qty, "T": self.ts_ms, "m": self.buyer_maker,
                "M": True}


@dataclass(slots=True)
class Request:
    path: str
    query: dict[str, str]
    at: float  # time.monotonic()
    status: int


@dataclass(slots=True)
class _Socket:
    """A subscriber: its streams, and its outgoing messages, written in order by one task."""

    ws: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def write(self) -> None:
        while not self.ws.closed:
            text = await self.outbox.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


class FakeBinance:
    """See the module docstring. `symbols` are Binance ids with their base and quote."""

    def __init__(
        self,
        symbols: Iterable[tuple[str, str, str]] = (("BTCUSDT", "BTC", "USDT"),),
        *,
        clock_ms: Callable[[], int] | None = None,
        port: int = 0,
    ) -> None:
        self.markets = {sid: (base, quote) for sid, base, quote in symbols}
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.port = port or free_port()
        self.requests: list[Request] = []
        self.made: dict[str, list[MadeTrade]] = {sid: [] for sid in self.markets}
        self.klines: dict[tuple[str, str], dict[int, list[Any]]] = {}
        self._kline_starts: dict[tuple[str, str], list[int]] = {}
        self._sockets: list[_Socket] = []
        self._withheld = False
        self._failures: list[int] = []
        self._next_trade_id = 5_000_000
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fake-binance")
        self._runner: web.AppRunner | None = None

    # Lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        self._thread.start()
        self._call(self._serve())
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream/ws"

    def ccxt_config(self) -> dict[str, Any]:
        """What to merge into ccxt's binance config so that every call it makes comes here."""
        return ccxt_config_for(self.port)

    # Market activity -----------------------------------------------------------------------

    def trade(
        self, symbol: str = "BTCUSDT", price: float = 100.0, qty: float = 1.0, *,
        buyer_maker: bool = False, ts_ms: int | None = None,
    ) -> MadeTrade:
        """Make one trade now: kept for REST, and sent to the stream unless withheld."""
        return self.trades(symbol, [(price, qty, buyer_maker)], ts_ms=ts_ms)[0]

    def trades(
        self, symbol: str, rows: Iterable[tuple[float, float, bool]], *, ts_ms: int | None = None
    ) -> list[MadeTrade]:
        made = []
        with self._lock:
            book = self.made[symbol]
            for price, qty, buyer_maker in rows:
                at = self.clock_ms() if ts_ms is None else ts_ms
                if book and at < book[-1].ts_ms:
                    at = book[-1].ts_ms  # an exchange's clock never goes back
                self._next_trade_id += 1
                trade = MadeTrade(symbol, len(book) + 1, self._next_trade_id, at,
                                  f"{price:.2f}", f"{qty:.5f}", buyer_maker)
                book.append(trade)
                made.append(trade)
            withheld = self._withheld
        if not withheld:
            self._loop.call_soon_threadsafe(self._broadcast, made)
        return made

    def run(self, symbol: str, rate: float, seconds: float, *, seed_price: float = 100.0) -> Future:
        """Make about `rate` trades a second for `seconds`, in ticks of 10 ms; a future that
        completes when done."""
        return asyncio.run_coroutine_threadsafe(
            self._steady(symbol, rate, seconds, seed_price), self._loop
        )

    def set_klines(self, symbol: str, interval: str, rows: Iterable[list[Any]]) -> None:
        """The candles `/klines` serves: Binance rows `[openTime, "o", "h", "l", "c", "v",
        closeTime, "quoteVolume", trades, "takerBase", "takerQuote", "0"]`."""
        by_start = {row[0]: row for row in rows}
        self.klines[(symbol, interval)] = by_start
        self._kline_starts[(symbol, interval)] = sorted(by_start)

    # Faults --------------------------------------------------------------------------------

    def drop_sockets(self) -> int:
        """Close every websocket, as an exchange restarting its gateway does; how many."""
        return self._call(self._close_sockets())

    def withhold(self, on: bool = True) -> None:
        """While on, trades are made and served over REST, but not sent on the stream."""
        with self._lock:
            self._withheld = on

    def fail_next(self, count: int, status: int = 429) -> None:
        """Answer the next `count` REST requests with `status` (Binance's body for it)."""
        with self._lock:
            self._failures.extend([status] * count)

    def send_raw(self, message: dict[str, Any] | str) -> None:
        """Send `message` as is to every subscribed websocket."""
        text = message if isinstance(message, str) else json.dumps(message)
        self._loop.call_soon_threadsafe(self._send_text, text)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in list(self.requests) if r.path.endswith(path)]

    # Server --------------------------------------------------------------------------------

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._rest(self._exchange_info))
        app.router.add_get("/api/v3/aggTrades", self._rest(self._agg_trades))
        app.router.add_get("/api/v3/trades", self._rest(self._recent_trades))
        app.router.add_get("/api/v3/klines", self._rest(self._klines))
        app.router.add_get("/stream/ws/{index}", self._websocket)
        app.router.add_get("/ws", self._websocket)
        app.router.add_post("/_control/run", self._control_run)
        app.router.add_get("/_control/subscribers", self._control_subscribers)
        app.router.add_post("/_control/klines", self._control_klines)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _shutdown(self) -> None:
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()

    def _rest(self, handler: Callable[[dict[str, str]], Any]) -> Callable[..., Any]:
        async def answer(request: web.Request) -> web.Response:
            query = dict(request.query)
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                self.requests.append(Request(request.path, query, time.monotonic(), failure))
                body = {"code": -1003, "msg": "Too many requests; current limit is 6000 request"
                        " weight per 1 MINUTE."} if failure in (418, 429) else {
                        "code": -1000, "msg": "An unknown error occurred."}
                return web.json_response(body, status=failure, headers={"Retry-After": "1"})
            symbol = query.get("symbol")
            if symbol is not None and symbol not in self.markets:
                self.requests.append(Request(request.path, query, time.monotonic(), 400))
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            self.requests.append(Request(request.path, query, time.monotonic(), 200))
            return web.json_response(handler(query))

        return answer

    async def _control_run(self, request: web.Request) -> web.Response:
        """For a benchmark driving the fake in another process: make trades at a rate."""
        query = request.query
        made = await self._steady(query["symbol"], float(query["rate"]),
                                  float(query["seconds"]), 100.0)
        return web.json_response({"made": made, "total": len(self.made[query["symbol"]])})

    async def _control_klines(self, request: web.Request) -> web.Response:
        """For a benchmark: serve `count` generated candles (`kline_rows`) from `start`."""
        query = request.query
        rows = kline_rows(int(query["start"]), int(query["count"]), query["interval"])
        self.set_klines(query["symbol"], query["interval"], rows)
        return web.json_response({"klines": len(rows)})

    async def _control_subscribers(self, request: web.Request) -> web.Response:
        return web.json_response({"subscribers": sum(1 for s in self._sockets if s.streams)})

    def _exchange_info(self, query: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC", "serverTime": self.clock_ms(), "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": sid, "status": "TRADING", "baseAsset": base,
                    "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
                    "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
                    "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False, "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                         "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                        {"filterType": "LOT_SIZE", "minQty": "0.00001000",
                         "maxQty": "9000.00000000", "stepSize": "0.00001000"},
                    ],
                }
                for sid, (base, quote) in self.markets.items()
            ],
        }

    def _agg_trades(self, query: dict[str, str]) -> list[dict[str, Any]]:
        book = list(self.made[query["symbol"]])
        limit = min(int(query.get("limit", 500)), 1000)
        if "fromId" in query:
            start = max(int(query["fromId"]) - 1, 0)
            return [t.agg_row() for t in book[start:start + limit]]
        if "startTime" in query or "endTime" in query:
            lo = int(query.get("startTime", 0))
            hi = int(query.get("endTime", 2**62))
            rows = [t for t in book if lo <= t.ts_ms <= hi]
            return [t.agg_row() for t in rows[:limit]]
        return [t.agg_row() for t in book[-limit:]]

    def _recent_trades(self, query: dict[str, str]) -> list[dict[str, Any]]:
        limit = min(int(query.get("limit", 500)), 1000)
        return [
            {"id": t.trade_id, "price": t.price, "qty": t.qty,
             "quoteQty": f"{float(t.price) * float(t.qty):.8f}", "time": t.ts_ms,
             "isBuyerMaker": t.buyer_maker, "isBestMatch": True}
            for t in list(self.made[query["symbol"]])[-limit:]
        ]

    def _klines(self, query: dict[str, str]) -> list[list[Any]]:
        key = (query["symbol"], query["interval"])
        rows = self.klines.get(key, {})
        limit = min(int(query.get("limit", 500)), 1000)
        starts = self._kline_starts.get(key, [])
        hi = int(query.get("endTime", 2**62))
        if "startTime" in query:
            first = bisect.bisect_left(starts, int(query["startTime"]))
            chosen = [t for t in starts[first:first + limit] if t <= hi]
        else:
            chosen = [t for t in starts if t <= hi][-limit:]
        return [rows[t] for t in chosen]

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        # Binance answers without permessage-deflate, whatever the client offers.
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        socket = _Socket(ws)
        self._sockets.append(socket)
        writer = asyncio.create_task(socket.write())
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                command = json.loads(message.data)
                streams = {s.lower() for s in command.get("params", [])}
                if command.get("method") == "SUBSCRIBE":
                    socket.streams |= streams
                elif command.get("method") == "UNSUBSCRIBE":
                    socket.streams -= streams
                socket.outbox.put_nowait(json.dumps({"result": None, "id": command.get("id")}))
        finally:
            writer.cancel()
            if socket in self._sockets:
                self._sockets.remove(socket)
        return ws

    def _broadcast(self, made: list[MadeTrade]) -> None:
        now = self.clock_ms()
        for socket in list(self._sockets):
            for trade in made:
                name = trade.symbol.lower()
                if f"{name}@aggtrade" in socket.streams:
                    self._send(socket, json.dumps(trade.agg_event(now)))
                if f"{name}@trade" in socket.streams:
                    self._send(socket, json.dumps(trade.trade_event(now)))

    def _send_text(self, text: str) -> None:
        for socket in list(self._sockets):
            if socket.streams:
                self._send(socket, text)

    def _send(self, socket: _Socket, text: str) -> None:
        if not socket.ws.closed:
            socket.outbox.put_nowait(text)

    async def _close_sockets(self) -> int:
        sockets, self._sockets = self._sockets, []
        for socket in sockets:
            await socket.ws.close()
        return len(sockets)

    async def _steady(self, symbol: str, rate: float, seconds: float, price: float) -> int:
        tick = 0.01
        owed = 0.0
        made = 0
        start = time.monotonic()
        ticks = 0
        while time.monotonic() - start < seconds:
            ticks += 1
            owed += rate * tick
            count = int(owed)
            owed -= count
            rows = []
            for _ in range(count):
                made += 1
                # A deterministic zig-zag walk on a 0.01 tick.
                price = max(round(price + ((made * 7919) % 11 - 5) * 0.01, 2), 0.01)
                rows.append((price, 0.001 * (1 + made % 17), made % 3 == 0))
            if rows:
                self.trades(symbol, rows)
            # Paced by the clock, so a slow tick is caught up rather than drifting.
            await asyncio.sleep(max(0.0, start + ticks * tick - time.monotonic()))
        return made


def kline_rows(start_ms: int, count: int, interval: str = "1m", *, seed: int = 1,
               skip: Iterable[int] = ()) -> list[list[Any]]:
    """`count` Binance kline rows of a seeded random walk from `start_ms`, one per interval,
    leaving out the candles whose index is in `skip` (an exchange outage)."""
    import random

    step = INTERVALS_MS[interval]
    rng = random.Random(seed)
    skipped = set(skip)
    price = 40_000.0
    rows = []
    for i in range(count):
        close = round(price * (1 + rng.gauss(0, 0.001)), 2)
        high = round(max(price, close) * (1 + rng.random() * 0.0005), 2)
        low = round(min(price, close) * (1 - rng.random() * 0.0005), 2)
        volume = round(rng.uniform(0.5, 50.0), 5)
        opened = start_ms + i * step
        if i not in skipped:
            rows.append([opened, f"{price:.2f}", f"{high:.2f}", f"{low:.2f}", f"{close:.2f}",
                         f"{volume:.5f}", opened + step - 1, f"{volume * close:.4f}",
                         rng.randint(1, 900), f"{volume / 2:.5f}", f"{volume * close / 2:.4f}",
                         "0"])
        price = close
    return rows


if __name__ == "__main__":
    # `python -m tests.fake_binance PORT`: serve until killed (benchmarks drive it over HTTP,
    # POST /_control/run?symbol=BTCUSDT&rate=20000&seconds=8).
    import sys

    FakeBinance(port=int(sys.argv[1])).start()._thread.join()
