"""`WriteBehind`: store writes run in order on a thread of their own, while the caller goes on.

An import spends its time in two halves that hardly share the interpreter: building the next
piece (polars, the compiled indicator fold, numpy) and storing the last one (SQLite or an
HTTP client, which release the GIL while they work). Handing the writes to one thread lets
the two halves run on two cores at once; on one core it changes nothing but the order in
which the work is done.

Writes run one at a time, in the order submitted. Once one fails, those submitted after it
are skipped (so a store never holds a write whose predecessor is missing: `HistoryWriter`
stores indicator values before their candles and relies on it), and the error is raised to
the caller at its next `submit`, `wait` or `close`, and every one after. At most `depth`
writes wait at a time: `submit` blocks beyond that, so memory holds a bounded number of
pieces.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType

Job = Callable[[], object]


class WriteBehind:
    """One writer thread; `submit` jobs, `wait` for them, `close` once (or use it as a
    context manager)."""

    def __init__(self, *, depth: int = 2, name: str = "write behind") -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Run `job` after those submitted before it; raise an earlier job's error first."""
        if self._closed:
            raise RuntimeError("this WriteBehind is closed")
        self._raise()
        self._jobs.put(job)

    def wait(self) -> None:
        """Return once every job submitted has run; raise the first error among them."""
        self._jobs.join()
        self._raise()

    def close(self) -> None:
        """Wait for the jobs submitted, then end the thread; raise as `wait`."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()
        self._raise()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """`close`; when the block raised, the jobs' own error (if any) does not replace its
        error."""
        try:
            self.close()
        except BaseException:
            if error is None:
                raise

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as error:  # handed to the caller, which decides
                self._error = error
            finally:
                self._jobs.task_done()

