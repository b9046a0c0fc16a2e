"""The embedded store's indicator values (`db.indicator_store.IndicatorStore`), a part of
`SqliteStore`.

Values are one row per (series, ts) holding a JSON object of every name (see
`db.sqlite_tables`); a write merges its names into the stored object with `json_patch`, so
writing some names keeps the others. A store file with the earlier one-row-per-value
`indicators` table is migrated once when opened, in one transaction (`_migrate_indicators`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from db.columns import IndicatorTable
from db.indicator_json import json_objects
from db.indicator_store import IndicatorPoint, IndicatorValues
from db.rows import IndicatorObject, indicator_object_frame, indicator_objects, indicator_values
from db.sqlite_connection import SqliteConnection, bounds, insert_blocks, insert_fields

# RFC 7396 merge: names in the write replace or add, a null removes, the others stay.
_UPSERT_INDICATOR_VALUES = ("INSERT INTO indicator_values (series, ts, values_json)", 3, """
ON CONFLICT (series, ts) DO UPDATE SET values_json = json_patch(values_json, excluded.values_json)
""")

_SERIES_ID = "SELECT id FROM series_ids WHERE exchange = ? AND symbol = ? AND timeframe = ?"

#: Old-layout rows migrated per step, so a large file needs no more memory than this.
_MIGRATE_CHUNK = 100_000


class SqliteIndicators(SqliteConnection):
    """`IndicatorStore` over the `indicator_values`, `series_ids` and `indicator_names` tables."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 10.0,
        checkpoint_interval_s: float | None = 0.5,
    ) -> None:
        super().__init__(
            path, busy_timeout_s=busy_timeout_s, checkpoint_interval_s=checkpoint_interval_s
        )
        # Committed facts only (ids are never reassigned), so they hold across processes.
        self._series_ids: dict[tuple[str, str, str], int] = {}
        self._stored_names: set[tuple[str, str, str, tuple[str, ...]]] = set()

    def upsert_indicators(self, points: Sequence[IndicatorPoint]) -> None:
        self.upsert_indicator_values(indicator_values(points))

    def upsert_indicator_values(self, rows: Sequence[IndicatorValues]) -> None:
        if not rows:
            return
        objects = indicator_objects(rows)
        with self._transaction(f"writing the indicator values of {len(rows)} candles") as conn:
            ids, names = self._write_indicator_objects(conn, objects)
        self._series_ids.update(ids)
        self._stored_names.update(names)

    def upsert_indicator_table(self, table: IndicatorTable) -> None:
        """Write a table's rows (see `IndicatorTable`) as `upsert_indicator_values` writes
        rows, encoded all at once (`db.indicator_json`)."""
        if not len(table.ts):
            return
        key = (table.exchange, table.symbol, table.timeframe)
        texts = json_objects(table.names, table.values, table.replace)
        names = (*key, table.written_names())
        what = f"writing the indicator values of {len(texts)} candles"
        with self._transaction(what, bulk=True) as conn:
            ids = self._resolve_series_ids(conn, [key])
            fields = [[ids[key]] * len(texts), table.ts.tolist(), texts]
            insert_fields(conn, _UPSERT_INDICATOR_VALUES, fields)
            if names not in self._stored_names:
                conn.executemany(
                    "INSERT OR IGNORE INTO indicator_names VALUES (?, ?, ?, ?)",
                    [(*key, name) for name in names[3]],
                )
        self._series_ids.update(ids)
        self._stored_names.add(names)

    def _write_indicator_objects(
        self, conn: sqlite3.Connection, objects: Sequence[IndicatorObject]
    ) -> tuple[dict[tuple[str, str, str], int], set[tuple[str, str, str, tuple[str, ...]]]]:
        """Upsert the objects in the open transaction; return the series ids and name sets it
        wrote, for the caller to remember once committed."""
        ids = self._resolve_series_ids(conn, {o[:3] for o in objects})
        insert_blocks(
            conn, _UPSERT_INDICATOR_VALUES, [(ids[o[:3]], o.ts, o.values_json) for o in objects]
        )
        names = {(*o[:3], o.names) for o in objects}.difference(self._stored_names)
        if names:
            conn.executemany(
                "INSERT OR IGNORE INTO indicator_names VALUES (?, ?, ?, ?)",
                sorted({(e, s, tf, name) for e, s, tf, some in names for name in some}),
            )
        return ids, names

    def _resolve_series_ids(
        self, conn: sqlite3.Connection, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        """The id of each (exchange, symbol, timeframe), adding the new ones in the open
        transaction."""
        ids = {}
        for key in keys:
            id = self._series_ids.get(key)
            if id is None:
                conn.execute(
                    "INSERT INTO series_ids (exchange, symbol, timeframe) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    key,
                )
                id = conn.execute(_SERIES_ID, key).fetchone()[0]
            ids[key] = id
        return ids

    def _migrate_indicators(self, conn: sqlite3.Connection) -> None:
        """Move the rows of the earlier `indicators` table (one per value) into
        `indicator_values`, then drop it. Python writes the JSON: SQLite's own rendering of a
        REAL keeps 15 digits, not every bit."""
        old = conn.execute(
            "SELECT exchange, symbol, timeframe, ts, name, value FROM indicators"
            " ORDER BY exchange, symbol, timeframe, ts, name"
        )
        # A (series, ts) cut by a chunk boundary is written twice; the upsert merges it.
        while chunk := old.fetchmany(_MIGRATE_CHUNK):
            self._write_indicator_objects(conn, indicator_objects(indicator_values(chunk)))
        conn.execute("DROP TABLE indicators")

    def indicators(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        names: Sequence[str] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> pl.DataFrame:
        key = (exchange, symbol, timeframe)
        lo, hi = bounds(start_ns, end_ns)
        sql = f"SELECT ts, values_json FROM indicator_values WHERE series = ({_SERIES_ID})"
        sql += " AND ts >= ? AND ts < ?"
        params: tuple[object, ...] = (*key, lo, hi)
        if names is None:
            rows = self._read(
                "SELECT name FROM indicator_names"
                " WHERE exchange = ? AND symbol = ? AND timeframe = ? ORDER BY name",
                key,
            )
            names = [row[0] for row in rows]
        else:
            # Only the timestamps where some of the names has a value.
            names = list(names)
            sql += (
                " AND EXISTS (SELECT 1 FROM json_each(values_json)"
                f" WHERE key IN ({', '.join('?' * len(names))}) AND type != 'null')"
            )
            params += tuple(names)
        rows = self._read(f"{sql} ORDER BY ts DESC LIMIT ?", (*params, max(limit, 0)))
        rows.reverse()
        return indicator_object_frame(rows, names)
