"""Where a resolver runs a store read: on the event loop when it is small and local, else in a
worker thread.

A worker thread costs 60–100 µs per read (the hop there and back, and the GIL handed over
twice), several times what a one-candle read of the embedded SQLite store takes. So a read of
at most `INLINE_ROWS` rows from a store whose `local_reads` is true runs on the event loop;
everything else (bigger reads, resampling, a store across the network) goes to a thread and
never holds the loop up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: The largest read (in rows) run on the event loop: about 100 µs of the embedded store's time.
INLINE_ROWS = 100


def is_local(store: object) -> bool:
    return bool(getattr(store, "local_reads", False))


async def read_store[T](store: object, read: Callable[[], T], *, rows: int) -> T:
    """`read()`, inline when `store` is local and `rows` is small, else in a worker thread."""
    if rows <= INLINE_ROWS and is_local(store):
        return read()
    return await asyncio.to_thread(read)
