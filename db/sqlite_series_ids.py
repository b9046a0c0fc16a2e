"""Small integer ids of series (exchange, symbol, timeframe), from the `series_ids` table.

The blocks of history (`db.candle_blocks`, `db.indicator_blocks`) and the live indicator rows
are keyed by these ids instead of three strings. Ids are never reassigned, so a process
remembers those of committed transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from db.sqlite_connection import SqliteConnection

Key = tuple[str, str, str]

SERIES_ID = "SELECT id FROM series_ids WHERE exchange = ? AND symbol = ? AND timeframe = ?"


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

    def _remember_series_ids(self, ids: dict[Key, int]) -> None:
        self._series_ids.update(ids)
