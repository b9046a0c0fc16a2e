"""`candlegraph serve` and a NATS server, each in its own process on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from server.processes import free_port, nats_server_binary, wait_for_port


@dataclass(frozen=True)
class Served:
    nats_url: str
    port: int


@contextlib.contextmanager
def served(data_dir: Path, **settings: str) -> Iterator[Served]:
    """Run both until the block ends; `settings` become `CANDLEGRAPH_*` variables.

    The server's output (its JSON log lines) is written, so its cost counts, but not shown.
    """
    nats_port, port = free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    nats = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")},
        "CANDLEGRAPH_DATA_DIR": str(data_dir),
        "CANDLEGRAPH_NATS_URL": nats_url,
        "CANDLEGRAPH_PORT": str(port),
        **{f"CANDLEGRAPH_{name.upper()}": value for name, value in settings.items()},
    }
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())",
         "serve"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", nats_port, timeout_s=10, proc=nats)
        wait_for_port("127.0.0.1", port, timeout_s=30, proc=server)
        yield Served(nats_url, port)
    finally:
        for proc in (server, nats):
            proc.terminate()
            proc.wait(timeout=20)
