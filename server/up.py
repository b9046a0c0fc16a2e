"""`candlegraph up`: the embedded system in the foreground.

Starts a NATS server with JetStream (storage under the data directory), then the dataflow,
a trade source (the simulator, or with `--exchange` the exchange feed of `candlegraph feed`)
and the GraphQL server as child processes that find each other through settings passed as
`CANDLEGRAPH_*` variables. SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from types import FrameType

from server.processes import (
    ProcessError,
    free_port,
    nats_server_binary,
    spawn,
    stop_all,
    wait_for_port,
)
from server.settings import PREFIX, Settings

log = logging.getLogger(__name__)


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(settings.to_env())
    return env


def _wait_until_serving(url: str, proc: subprocess.Popen, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
        time.sleep(0.1)
    return False


def trade_source(settings: Settings) -> str:
    """The command that feeds trades: the exchange feed when an exchange is named, else the
    simulator."""
    return "feed" if settings.exchange else "simulate"


def run_up(settings: Settings) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    nats_port = settings.nats_port or free_port()
    settings = settings.with_overrides(
        data_dir=data_dir, nats_url=f"nats://127.0.0.1:{nats_port}", nats_port=nats_port
    )
    env = _child_env(settings)
    nats = spawn(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js",
         "-sd", str(data_dir / "nats"), "--log", str(data_dir / "nats-server.log")],
        env=env,
    )
    workers: list[subprocess.Popen] = []
    try:
        wait_for_port("127.0.0.1", nats_port, timeout_s=10, proc=nats)
        python = [sys.executable, "-m", "server.cli"]
        workers = [
            spawn([*python, "flow"], env=env),
            spawn([*python, trade_source(settings)], env=env),
            spawn([*python, "serve"], env=env),
        ]
        url = f"http://{settings.host}:{settings.port}"
        if _wait_until_serving(f"{url}/health", workers[2], timeout_s=30):
            print(f"CandleGraph is up: GraphiQL at {url}/graphql (Ctrl-C stops)", flush=True)
        while not stop.is_set():
            exited = [p for p in [nats, *workers] if p.poll() is not None]
            if exited:
                log.error("%s exited with %s; stopping", exited[0].args, exited[0].returncode)
                return 1
            stop.wait(0.2)
        return 0
    except ProcessError as error:
        log.error("%s", error)
        return 1
    finally:
        stop_all(workers, timeout_s=7)
        stop_all([nats], timeout_s=2)
