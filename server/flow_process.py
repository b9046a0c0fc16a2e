"""`candlegraph flow`: run the candle dataflow as one process, a local cluster, or one member.

- One worker (the default): this process runs the whole flow.
- `--workers N`: this process starts N worker processes on this machine (Bytewax workers that
  are threads share the GIL, so the flow scales with processes) and supervises them: a
  signal stops them all, and if one fails the others are stopped too and (with recovery on)
  all are started again from their last snapshot.
- `--addresses host:port,... --process-id I`: this process is member I of a Bytewax cluster
  spread over machines; every member is started with the same list.

Each of the N processes owns one shard (`exchange:symbol` by CRC-32, `flows.shards`).
With recovery on, Bytewax snapshots state every `snapshot_interval_s` into
`DATA/recovery/process-I-of-N/part-I.sqlite3` (process I keeps partition I of N), so members
on different machines need no shared disk. Recovery data is tied to N: starting with another
number of workers while data for N exists is refused, with a message saying so.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType

from server.processes import free_port, spawn, stop_all
from server.settings import PREFIX, Settings, SettingsError

log = logging.getLogger(__name__)

#: A local cluster whose member died is restarted (with recovery on) at most this many times
#: within the window, after a short pause.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0
RESTART_DELAY_S = 1.0


def run_flow(settings: Settings) -> int:
    if settings.flow_workers > 1 and not settings.flow_addresses:
        return _run_local_cluster(settings)
    return _run_member(settings)


def recovery_dir(settings: Settings, process_id: int, processes: int) -> Path:
    """This process's recovery partition, created on first use (see the module docstring)."""
    base = settings.data_dir / "recovery"
    base.mkdir(parents=True, exist_ok=True)
    name = f"process-{process_id}-of-{processes}"
    others = sorted(
        p.name for p in base.glob("process-*-of-*")
        if not p.name.endswith(f"-of-{processes}")
    )
    if others:
        raise SettingsError(
            f"recovery data under {base} was written by a flow with another number of workers"
            f" ({', '.join(others)}); run with that many workers, or remove those directories"
            " to start afresh"
        )
    target = base / name
    if not target.exists():
        from bytewax.recovery import init_db_dir

        with tempfile.TemporaryDirectory(dir=base, prefix=".init-") as tmp:
            parts = Path(tmp) / "parts"
            parts.mkdir()
            init_db_dir(parts, processes)
            for part in parts.iterdir():
                if part.name != f"part-{process_id}.sqlite3":
                    part.unlink()
            with contextlib.suppress(FileExistsError, OSError):
                parts.rename(target)
    return target


def _run_member(settings: Settings) -> int:
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from flows.dataflow import build_flow
    from flows.history import StoredHistory
    from flows.jetstream_source import JetStreamSource
    from flows.sink import StoreAndPublishSink
    from market.indicators import parse_indicators
    from market.spike_filter import SpikeFilter
    from market.timeframes import parse_timeframes
    from server.stores import open_store

    addresses = list(settings.flow_addresses)
    processes = len(addresses) or 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # The first signal ends the input so in-flight messages are written and acked;
        # a second one aborts.
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    recovery = start_file = None
    if settings.flow_recovery:
        partitions = recovery_dir(settings, settings.flow_process_id, processes)
        recovery = RecoveryConfig(partitions)
        start_file = partitions / "source-start"
    indicators = parse_indicators(settings.indicators)
    # The stored tail of each series warms its indicators when the flow first meets it.
    history = StoredHistory.for_indicators(
        open_store(settings), indicators, best_effort=True, stored_markets_only=True
    )
    flow = build_flow(
        JetStreamSource(settings.nats_url, stop=stop, start_file=start_file),
        StoreAndPublishSink(
            settings.nats_url, lambda: open_store(settings),
            stats_interval_s=settings.flow_stats_interval_s,
        ),
        timeframes=parse_timeframes(list(settings.timeframes)),
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_s),
        indicators=indicators,
        forming_interval=timedelta(milliseconds=settings.forming_interval_ms),
        spike_filter=SpikeFilter(sigmas=settings.spike_sigmas),
        shards=processes,
        history=history,
    )
    log.info(
        "dataflow process %d of %d reading %s, writing the %s store",
        settings.flow_process_id, processes, settings.nats_url, settings.store,
    )
    # The flow's imports and compiled kernels (~140k objects) live as long as the process:
    # keep them out of the collector's full passes, which otherwise cost several percent of
    # the flow's time.
    gc.collect()
    gc.freeze()
    try:
        cli_main(
            flow,
            workers_per_process=1,
            process_id=settings.flow_process_id if addresses else None,
            addresses=addresses or None,
            epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
            recovery_config=recovery,
        )
    except KeyboardInterrupt:
        log.info("dataflow stopped")
    finally:
        history.store.close()
    return 0


def _run_local_cluster(settings: Settings) -> int:
    """Start `flow_workers` member processes and watch them until a signal stops them all.

    When a member dies, the others are stopped too, because a Bytewax cluster cannot go on
    without one. With recovery on, the whole cluster is then started again (on fresh ports)
    and resumes from its last snapshot, while JetStream redelivers what was not acked; a
    cluster that keeps dying (`MAX_RESTARTS` within `RESTART_WINDOW_S`) is given up.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    restarts: list[float] = []
    while True:
        failed = _run_cluster_once(settings, stop)
        if failed is None:
            return 0
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW_S]
        if not settings.flow_recovery or len(restarts) >= MAX_RESTARTS:
            log.error("flow worker %s exited with %s; the flow stops (%s)", failed.pid,
                      failed.returncode,
                      "recovery is off" if not settings.flow_recovery
                      else f"{len(restarts)} restarts in {RESTART_WINDOW_S:.0f} s")
            return 1
        restarts.append(now)
        log.error("flow worker %s exited with %s; restarting all %d from their last snapshot",
                  failed.pid, failed.returncode, settings.flow_workers)
        if stop.wait(RESTART_DELAY_S):
            return 0


def _run_cluster_once(settings: Settings, stop: threading.Event) -> subprocess.Popen | None:
    """Run the members until `stop` (None) or until one of them exits (that member)."""
    count = settings.flow_workers
    addresses = tuple(f"127.0.0.1:{free_port()}" for _ in range(count))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    children: list[subprocess.Popen] = []
    try:
        for process_id in range(count):
            member = settings.with_overrides(
                flow_addresses=addresses, flow_process_id=process_id
            )
            if settings.flow_recovery:
                recovery_dir(member, process_id, count)  # refuses a mismatch before starting
            children.append(spawn(
                [sys.executable, "-m", "server.cli", "flow"],
                env={**base_env, **member.to_env()},
            ))
        log.info("dataflow started %d worker processes: %s", count, ", ".join(addresses))
        while not stop.is_set():
            failed = [c for c in children if c.poll() is not None]
            if failed:
                return failed[0]
            stop.wait(0.2)
        return None
    finally:
        stop_all(children, timeout_s=15)
