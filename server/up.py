"""`candlegraph up`: the embedded system in the foreground.

Starts a NATS server with JetStream (storage under the data directory), then the dataflow,
a trade source (the simulator, or with `--exchange` the exchange feed of `candlegraph feed`;
none with `--no-feed`), the GraphQL server and a backtest worker as child processes that
find each other through settings passed as `CANDLEGRAPH_*` variables. A child that exits is
started again after a pause that doubles from `RESTART_DELAY_S` up to `RESTART_DELAY_CAP_S`
with each restart of it (the flow also restarts its own workers, see `server.flow_process`).
SIGINT or SIGTERM stops them all.
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
from dataclasses import dataclass
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

RESTART_DELAY_S = 1.0
RESTART_DELAY_CAP_S = 30.0


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


@dataclass
class _Child:
    """A child process `up` keeps running: started again, after a growing pause, if it exits."""

    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    restart_at: float = 0.0

    def start(self) -> subprocess.Popen:
        self.proc = spawn(self.args, env=self.env)
        return self.proc

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def schedule_restart(self, now: float) -> None:
        delay = min(RESTART_DELAY_CAP_S, RESTART_DELAY_S * 2 ** min(self.restarts, 10))
        self.restarts += 1
        self.restart_at = now + delay
        assert self.proc is not None
        log.error("%s (pid %d) exited with %s; starting it again in %.0f s (restart %d)",
                  self.name, self.proc.pid, self.proc.returncode, delay, self.restarts)
        self.proc = None


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
    python = [sys.executable, "-m", "server.cli"]
    nats = _Child("nats-server", [
        nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js",
        "-sd", str(data_dir / "nats"), "--log", str(data_dir / "nats-server.log"),
    ], env)
    server = _Child("the GraphQL server", [*python, "serve"], env)
    workers = [
        _Child("the dataflow", [*python, "flow"], env),
        *([_Child("the trade source", [*python, trade_source(settings)], env)]
          if settings.up_feed else []),
        server,
        _Child("the backtest worker", [*python, "worker"], env),
    ]
    children = [nats, *workers]
    try:
        wait_for_port("127.0.0.1", nats_port, timeout_s=10, proc=nats.start())
        for child in workers:
            child.start()
        url = f"http://{settings.host}:{settings.port}"
        assert server.proc is not None
        if _wait_until_serving(f"{url}/health", server.proc, timeout_s=30):
            print(f"CandleGraph is up: the web client at {url}/, GraphiQL at {url}/graphql"
                  " (Ctrl-C stops)", flush=True)
        # A child that exits is started again (NATS keeps its JetStream files, the flow
        # resumes from its snapshots); nothing else stops until a signal says so.
        while not stop.wait(0.2):
            now = time.monotonic()
            for child in children:
                if child.proc is None:
                    if now >= child.restart_at:
                        child.start()
                elif child.exited() is not None:
                    child.schedule_restart(now)
        return 0
    except ProcessError as error:
        log.error("%s", error)
        return 1
    finally:
        stop_all([c.proc for c in workers if c.proc is not None], timeout_s=7)
        stop_all([nats.proc] if nats.proc is not None else [], timeout_s=2)
