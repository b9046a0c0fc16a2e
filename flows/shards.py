"""Shards: which of the flow's aggregators owns a message, by `exchange:symbol`.

Each shard is one `CandleAggregator` (one Bytewax state key), so its watermark spans the
symbols of that shard. The flow runs one shard per worker; the shard of a market is a CRC-32
of `exchange:symbol`, stable across processes, runs and machines.
"""

from __future__ import annotations

import zlib

from flows.jetstream_source import RawMessage
from flows.subjects import key_of_trades_subject

_CACHE_LIMIT = 100_000


class Shards:
    """Maps a message to its shard's state key, `shard-<i>-of-<count>`."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"the flow needs at least one shard, got {count}")
        self.count = count
        self.names = tuple(f"shard-{i}-of-{count}" for i in range(count))
        self._cache: dict[str, str] = {}

    def of_market(self, exchange: str, symbol: str) -> str:
        return self.names[zlib.crc32(f"{exchange}:{symbol}".encode()) % self.count]

    def __call__(self, message: RawMessage) -> str:
        name = self._cache.get(message.subject)
        if name is None:
            key = key_of_trades_subject(message.subject)
            # A malformed subject goes to shard 0, which dead-letters it.
            name = self.of_market(*key) if key is not None else self.names[0]
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[message.subject] = name
        return name
