"""`Checkpointer`: copies a SQLite file's write-ahead log into the file from a thread of its own.

By default SQLite checkpoints inside the commit that grows the WAL past 1,000 pages, so that
commit also waits for two fsyncs and the copy. The flow's writes wait on their commits, so the
embedded store leaves that work to this thread instead: after a commit it runs a PASSIVE
checkpoint (which never blocks readers or writers), at most once per `interval_s`. Durability is
unchanged: a commit is in the WAL when it returns, whoever copies it on later.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: The WAL size (pages) at which a committing connection still checkpoints by itself, should
#: this thread fall behind (SQLite's default is 1,000).
FALLBACK_PAGES = 16_000


class Checkpointer:
    """One daemon thread with its own connection; `due()` after each commit, `stop()` once."""

    def __init__(self, path: Path, *, interval_s: float, busy_timeout_s: float) -> None:
        self._path = path
        self._interval_s = interval_s
        self._timeout = busy_timeout_s
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"checkpoint {path.name}", daemon=True
        )
        self._thread.start()

    def due(self) -> None:
        """A commit added to the WAL."""
        self._due.set()

    def stop(self, *, wait: bool = True) -> None:
        """End the thread, after the checkpoint under way if any (waiting for it, or not)."""
        self._stopping.set()
        self._due.set()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as error:
            log.warning("cannot open %s to checkpoint it: %s", self._path, error)
            return
        try:
            while True:
                self._due.wait()
                if self._stopping.is_set():
                    return
                self._due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # the next commit's checkpoint tries again
                    log.warning("checkpointing %s: %s", self._path, error)
                if self._stopping.wait(self._interval_s):
                    return
        finally:
            conn.close()
