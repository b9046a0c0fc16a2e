"""A GraphQL server of its own for a test module: settings of the test's choosing, a NATS server
whose monitoring endpoint shows the server's subscriptions, and a seeded SQLite store."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from db.sqlite import SqliteStore
from market.messages import Candle
from server.app import create_app
from server.processes import free_port, nats_server_binary, wait_for_port
from server.settings import Settings
from tests.conditions import wait_until

S = 1_000_000_000


class MonitoredNats:
    """nats-server with JetStream off and its HTTP monitoring port on."""

    def __init__(self) -> None:
        self.port = free_port()
        self.monitor_port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port),
             "-m", str(self.monitor_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, timeout_s=10, proc=self.proc)
        wait_for_port("127.0.0.1", self.monitor_port, timeout_s=10, proc=self.proc)

    def subscriptions(self, connection_name: str = "candlegraph-server") -> list[str]:
        """The subjects the named client connection is subscribed to, per the server."""
        connz = httpx.get(
            f"http://127.0.0.1:{self.monitor_port}/connz", params={"subs": "1"}
        ).json()
        return sorted(
            subject
            for conn in connz.get("connections") or []
            if conn.get("name") == connection_name
            for subject in conn.get("subscriptions_list") or []
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class LiveApi:
    """The app served by uvicorn in a thread, with the settings it was made from.

    `send_buffer` caps the kernel's send buffer of every connection (accepted sockets inherit
    the listener's), so a client that stops reading backs the server up after a few kilobytes
    instead of the megabytes that loopback autotuning allows. `port` serves on a chosen port
    (a server restarted where its clients will reconnect); 0 takes a free one.
    """

    def __init__(
        self, settings: Settings, *, send_buffer: int | None = None, port: int = 0
    ) -> None:
        self.settings = settings
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        wait_until(lambda: self._server.started, timeout_s=15, what="uvicorn to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def serve(
    data_dir: Path,
    nats_url: str,
    candles: Iterable[Candle] = (),
    *,
    send_buffer: int | None = None,
    **settings: Any,
) -> LiveApi:
    """The app on loopback over a store holding `candles`."""
    config = Settings(data_dir=data_dir, nats_url=nats_url, **settings)
    store = SqliteStore(config.store_path)
    store.upsert_candles(list(candles))
    store.close()
    return LiveApi(config, send_buffer=send_buffer)


def iso(ts_ns: int) -> str:
    """How the API writes a candle's `ts`."""
    return datetime.fromtimestamp(ts_ns // S, UTC).isoformat()


def closed_candle(symbol: str, ts_ns: int, trades: int = 1, timeframe: str = "1s") -> Candle:
    price = 100.0 + trades
    return Candle("sim", symbol, timeframe, ts_ns, price, price + 1, price - 1, price,
                  float(trades), trades, price, True)
