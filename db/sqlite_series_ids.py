"""Small integer ids of series (exchange, symbol, timeframe), from the `series_ids` table.

The blocks of history (`db.candle_blocks`, `db.indicator_blocks`) and the live indicator rows
are keyed by these ids instead of three strings. Ids are never reassigned, so a process
remembers those of committed transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from db.sqlite_connection import SqliteConnection

Key = tuple[str, str, str]

SERIES_ID = "SELECT id FROM series_ids WHERE exchange = ? AND symbol = ? AND timeframe = ?"

# Of (series, lo, hi) ranges, those that some block of the series reaches into: the latest
# block starting at or before hi, if it ends at or after lo (blocks do not overlap).
_IN_BLOCKS = """
WITH w (series, lo, hi) AS (VALUES {values})
SELECT w.series FROM w
WHERE (SELECT b.last_ts FROM {table} AS b WHERE b.series = w.series AND b.first_ts <= w.hi
       ORDER BY b.first_ts DESC LIMIT 1) >= w.lo
"""

#: (series, lo, hi) ranges per query of `_IN_BLOCKS` (3 parameters each).
_RANGES_PER_QUERY = 1000


class SqliteSeriesIds(SqliteConnection):
    """`_resolve_series_ids` in a write transaction, `_remember_series_ids` once it commits.
    The ids known are `_series_ids` (of `SqliteConnection`): committed facts only, as ids are
    never reassigned, so they hold across processes."""

    def _resolve_series_ids(
        self, conn: sqlite3.Connection, keys: Iterable[Key]
    ) -> dict[Key, int]:
        """The id of each (exchange, symbol, timeframe), adding the new ones in the open
        transaction; remember them with `_remember_series_ids` once it has committed."""
        ids = {}
        for key in keys:
            id = self._series_ids.get(key)
            if id is None:
                conn.execute(
                    "INSERT INTO series_ids (exchange, symbol, timeframe) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    key,
                )
                id = conn.execute(SERIES_ID, key).fetchone()[0]
            ids[key] = id
        return ids

    def _series_id(self, conn: sqlite3.Connection, key: Key) -> int | None:
        """The id of a series, None if it has none yet (nothing written under it)."""
        id = self._series_ids.get(key)
        if id is None:
            found = conn.execute(SERIES_ID, key).fetchone()
            if found is None:
                return None
            id = self._series_ids[key] = found[0]  # a committed id, never reassigned
        return id

    def _remember_series_ids(self, ids: dict[Key, int]) -> None:
        self._series_ids.update(ids)


def reaching_blocks(
    conn: sqlite3.Connection, table: str, ranges: Sequence[tuple[int, int, int]]
) -> set[int]:
    """The series of (series, first ts, last ts) ranges that reach into one of its blocks in
    `table` (`candle_blocks` or `indicator_blocks`)."""
    hit: set[int] = set()
    for start in range(0, len(ranges), _RANGES_PER_QUERY):
        some = ranges[start:start + _RANGES_PER_QUERY]
        sql = _IN_BLOCKS.format(values=", ".join(["(?, ?, ?)"] * len(some)), table=table)
        hit.update(row[0] for row in conn.execute(sql, [v for r in some for v in r]))
    return hit
