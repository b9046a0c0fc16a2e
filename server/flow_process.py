"""`candlegraph flow`: run the candle dataflow, supervised on this machine, or as one member.

- By default (`--workers N`, N = 1 unless given): this process supervises N worker processes
  on this machine (Bytewax workers that are threads share the GIL, so the flow scales with
  processes). A signal stops them all. When one dies, the others are stopped too (a Bytewax
  cluster cannot go on without one) and all are started again, from their last snapshot
  with recovery on, at most `MAX_RESTARTS` times within `RESTART_WINDOW_S`. The restart
  count reaches each worker, which reports it with its counters (`stats.flow.<worker>`,
  and so `candlegraph_flow_restarts` on the server's /metrics).
- `--addresses host:port,... --process-id I`: this process is member I of a Bytewax cluster
  spread over machines; every member is started with the same list, each under a
  supervisor of the machine's (systemd, compose's restart policy).

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
    if settings.flow_addresses:
        return run_member(settings)
    return _supervise(settings)


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


def run_member(settings: Settings, *, restarts: int = 0) -> int:
    """Run this process's part of the flow until a signal ends its input (or it fails).
    `restarts` is how many times its supervisor has started it again, for its reports."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from flows.dataflow import build_flow
    from flows.history import StoredHistory
    from flows.jetstream_source import JetStreamSource
    from flows.metrics import FlowMetrics
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
    metrics = FlowMetrics(settings.flow_process_id, restarts=restarts)
    if settings.flow_metrics_port:
        metrics.serve(settings.metrics_host, settings.flow_metrics_port)
    indicators = parse_indicators(settings.indicators)
    # The stored tail of each series warms its indicators when the flow first meets it.
    history_store = open_store(settings)
    history = StoredHistory.for_indicators(
        history_store, indicators, best_effort=True, stored_markets_only=True
    )
    flow = build_flow(
        JetStreamSource(settings.nats_url, stop=stop, start_file=start_file),
        StoreAndPublishSink(
            settings.nats_url, lambda: open_store(settings),
            stats_interval_s=settings.flow_stats_interval_s, restarts=restarts, metrics=metrics,
        ),
        timeframes=parse_timeframes(list(settings.timeframes)),
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_s),
        indicators=indicators,
        forming_interval=timedelta(milliseconds=settings.forming_interval_ms),
        spike_filter=SpikeFilter(sigmas=settings.spike_sigmas),
        shards=processes,
        on_snapshot=metrics.snapshotted if settings.flow_recovery else None,
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
        history_store.close()
    return 0


def _supervise(settings: Settings) -> int:
    """Start `flow_workers` member processes and watch them until a signal stops them all.

    When a member dies, the others are stopped too, and all are started again (on fresh
    ports), resuming from their last snapshot while JetStream redelivers what was not acked;
    without recovery, the candles that were forming are lost, as they would be anyway. A
    flow that keeps dying (`MAX_RESTARTS` within `RESTART_WINDOW_S`) is given up (exit 1).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recent: list[float] = []
    restarts = 0
    while True:
        failed = _run_members_once(settings, stop, restarts)
        if failed is None:
            return 0
        now = time.monotonic()
        recent = [t for t in recent if now - t < RESTART_WINDOW_S]
        if len(recent) >= MAX_RESTARTS:
            log.error("flow worker %s exited with %s; the flow stops after %d restarts in"
                      " %.0f s", failed.pid, failed.returncode, len(recent), RESTART_WINDOW_S)
            return 1
        recent.append(now)
        restarts += 1
        log.error(
            "flow worker %s exited with %s; restarting all %d (restart %d)%s",
            failed.pid, failed.returncode, settings.flow_workers, restarts,
            " from their last snapshot" if settings.flow_recovery
            else "; recovery is off, so the candles that were forming are lost",
        )
        if stop.wait(RESTART_DELAY_S):
            return 0


def _run_members_once(
    settings: Settings, stop: threading.Event, restarts: int
) -> subprocess.Popen | None:
    """Run the members until `stop` (None) or until one of them exits (that member)."""
    count = settings.flow_workers
    addresses = tuple(f"127.0.0.1:{free_port()}" for _ in range(count)) if count > 1 else ()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    children: list[subprocess.Popen] = []
    try:
        for process_id in range(count):
            member = settings.with_overrides(
                flow_addresses=addresses, flow_process_id=process_id,
                # Each worker serves its own metrics, on consecutive ports.
                flow_metrics_port=settings.flow_metrics_port and (
                    settings.flow_metrics_port + process_id),
            )
            if settings.flow_recovery:
                recovery_dir(member, process_id, count)  # refuses a mismatch before starting
            children.append(spawn(
                [sys.executable, "-m", "server.flow_process", "--restarts", str(restarts)],
                env={**base_env, **member.to_env()},
            ))
        log.info("dataflow started %d worker process(es)%s", count,
                 f": {', '.join(addresses)}" if addresses else "")
        while not stop.is_set():
            failed = [c for c in children if c.poll() is not None]
            if failed:
                return failed[0]
            stop.wait(0.2)
        return None
    finally:
        stop_all(children, timeout_s=15)


def _member_main(argv: list[str]) -> int:
    """`python -m server.flow_process [--restarts N]`: one member, settings from the
    environment, as the supervisor starts it."""
    import argparse

    from server.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m server.flow_process")
    parser.add_argument("--restarts", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        print(f"flow worker: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    return run_member(settings, restarts=args.restarts)


if __name__ == "__main__":
    sys.exit(_member_main(sys.argv[1:]))
