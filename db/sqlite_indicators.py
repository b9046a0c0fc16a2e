"""The embedded store's indicator values (`db.indicator_store.IndicatorStore`), a part of
`SqliteStore`.

Values written a candle at a time are one row per (series, ts) holding a JSON object of every
name; history (`upsert_indicator_table`) is written in blocks of rows (see `db.sqlite_tables`
and `db.indicator_blocks`). A write merges its names into what is stored, so writing some
names keeps the others: a row with `json_patch`, a block by reading the blocks and rows in its
span, merging, and writing them again as blocks. A row write whose times fall in a block's
span is merged into the blocks the same way. A store file with the earlier one-row-per-value
`indicators` table is migrated once when opened, in one transaction (`_migrate_indicators`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import polars as pl

from db.columns import IndicatorTable
from db.indicator_blocks import (
    Patch,
    Values,
    block_values,
    combine,
    merge,
    rows_patch,
    stored_blocks,
    table_patch,
)
from db.indicator_store import IndicatorPoint, IndicatorValues
from db.rows import (
    IndicatorObject,
    decode_objects,
    indicator_object_frame,
    indicator_objects,
    indicator_values,
)
from db.sqlite_connection import bounds, insert_blocks
from db.sqlite_series_ids import SERIES_ID, SqliteSeriesIds, reaching_blocks

# RFC 7396 merge: names in the write replace or add, a null removes, the others stay.
_UPSERT_INDICATOR_VALUES = ("INSERT INTO indicator_values (series, ts, values_json)", 3, """
ON CONFLICT (series, ts) DO UPDATE SET values_json = json_patch(values_json, excluded.values_json)
""")

# The blocks of a series that start at or before a time, latest first: the first one ending
# before the range asked for is the last that can reach into it (blocks do not overlap).
_BLOCKS_BEFORE = """
SELECT first_ts, last_ts, ts_json FROM indicator_blocks
WHERE series = ? AND first_ts <= ? ORDER BY first_ts DESC
"""
_BLOCK_VALUES = """
SELECT name, values_blob FROM indicator_block_values WHERE series = ? AND first_ts = ?
"""

#: Old-layout rows migrated per step, so a large file needs no more memory than this.
_MIGRATE_CHUNK = 100_000


class SqliteIndicators(SqliteSeriesIds):
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
        self._stored_names: set[tuple[str, str, str, tuple[str, ...]]] = set()

    def upsert_indicators(self, points: Sequence[IndicatorPoint]) -> None:
        self.upsert_indicator_values(indicator_values(points))

    def upsert_indicator_values(self, rows: Sequence[IndicatorValues]) -> None:
        if not rows:
            return
        objects = indicator_objects(rows)
        with self._transaction(f"writing the indicator values of {len(rows)} candles") as conn:
            ids, names = self._write_indicator_objects(conn, objects)
        self._remember_series_ids(ids)
        self._stored_names.update(names)

    def upsert_indicator_table(self, table: IndicatorTable) -> None:
        """Write a table's rows (see `IndicatorTable`) into the series' blocks."""
        if not len(table.ts):
            return
        key = (table.exchange, table.symbol, table.timeframe)
        patch = table_patch(table.ts, table.names, table.values, table.replace)
        names = (*key, table.written_names())
        what = f"writing the indicator values of {len(table.ts)} candles"
        with self._transaction(what, bulk=True) as conn:
            ids = self._resolve_series_ids(conn, [key])
            _write_blocks(conn, ids[key], patch)
            if names not in self._stored_names:
                conn.executemany(
                    "INSERT OR IGNORE INTO indicator_names VALUES (?, ?, ?, ?)",
                    [(*key, name) for name in names[3]],
                )
        self._remember_series_ids(ids)
        self._stored_names.add(names)

    def _write_indicator_objects(
        self, conn: sqlite3.Connection, objects: Sequence[IndicatorObject]
    ) -> tuple[dict[tuple[str, str, str], int], set[tuple[str, str, str, tuple[str, ...]]]]:
        """Upsert the objects in the open transaction; return the series ids and name sets it
        wrote, for the caller to remember once committed."""
        ids = self._resolve_series_ids(conn, {o[:3] for o in objects})
        in_blocks = _series_in_blocks(conn, ids, objects)
        insert_blocks(conn, _UPSERT_INDICATOR_VALUES, [
            (ids[o[:3]], o.ts, o.values_json) for o in objects if ids[o[:3]] not in in_blocks
        ])
        for id, series_objects in in_blocks.items():
            values = decode_objects(o.values_json for o in series_objects)
            times = [o.ts for o in series_objects]
            _write_blocks(conn, id, rows_patch(zip(times, values, strict=True)))
        names = {(*o[:3], o.names) for o in objects}.difference(self._stored_names)
        if names:
            conn.executemany(
                "INSERT OR IGNORE INTO indicator_names VALUES (?, ?, ?, ?)",
                sorted({(e, s, tf, name) for e, s, tf, some in names for name in some}),
            )
        return ids, names

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
        limit = max(limit, 0)
        some_of = None if names is None else list(names)
        # One snapshot: a history write moves values from rows into blocks in one commit.
        with self._snapshot() as conn:
            shown = some_of if some_of is not None else [row[0] for row in conn.execute(
                "SELECT name FROM indicator_names"
                " WHERE exchange = ? AND symbol = ? AND timeframe = ? ORDER BY name",
                key,
            )]
            frame = indicator_object_frame(_newest_rows(conn, key, lo, hi, some_of, limit),
                                           shown)
            id = self._series_id(conn, key)
            values = Values.empty()
            if id is not None and limit and lo < hi:
                with closing(_blocks_back(conn, id, lo, hi - 1, some_of)) as blocks:
                    values = _newest_in_blocks(blocks, lo, hi, some_of, limit)
        if not len(values.ts):
            return frame
        from_blocks = {"ts": pl.Series("ts", values.ts, pl.Int64())}
        for name in shown:
            column = (values.values[:, values.names.index(name)] if name in values.names
                      else np.full(len(values.ts), np.nan))
            from_blocks[name] = pl.Series(name, column, pl.Float64(), nan_to_null=True)
        return pl.concat([frame, pl.DataFrame(from_blocks)]).sort("ts").tail(limit)


def _newest_rows(
    conn: sqlite3.Connection, key: tuple[str, str, str], lo: int, hi: int,
    some_of: Sequence[str] | None, limit: int,
) -> list[tuple[int, str]]:
    """The series' newest `limit` rows of `indicator_values` in [lo, hi) (with a value of one
    of `some_of` if given), oldest first."""
    sql = f"SELECT ts, values_json FROM indicator_values WHERE series = ({SERIES_ID})"
    sql += " AND ts >= ? AND ts < ?"
    params: tuple[object, ...] = (*key, lo, hi)
    if some_of is not None:
        sql += (
            " AND EXISTS (SELECT 1 FROM json_each(values_json)"
            f" WHERE key IN ({', '.join('?' * len(some_of))}) AND type != 'null')"
        )
        params += tuple(some_of)
    rows = conn.execute(f"{sql} ORDER BY ts DESC LIMIT ?", (*params, limit)).fetchall()
    rows.reverse()
    return rows


def _newest_in_blocks(
    blocks: Iterable[tuple[tuple[int, int], Values]], lo: int, hi: int,
    some_of: Sequence[str] | None, limit: int,
) -> Values:
    """The newest `limit` times in [lo, hi) of `blocks` (latest first), with a value of one of
    `some_of` if given."""
    parts: list[Values] = []
    count = 0
    for _, values in blocks:
        parts.append(values := _select(values, lo, hi, some_of))
        count += len(values.ts)
        if count >= limit:
            break
    values = combine(parts)
    return Values(values.ts[-limit:], values.names, values.values[-limit:])


def _select(values: Values, lo: int, hi: int, some_of: Sequence[str] | None) -> Values:
    """The rows of `values` in [lo, hi), and with a value of one of `some_of` if given."""
    keep = (values.ts >= lo) & (values.ts < hi)
    if some_of is not None:
        columns = [k for k, name in enumerate(values.names) if name in some_of]
        keep &= np.isfinite(values.values[:, columns]).any(axis=1)
    return Values(values.ts[keep], values.names, values.values[keep])


def _series_in_blocks(
    conn: sqlite3.Connection, ids: dict[tuple[str, str, str], int],
    objects: Sequence[IndicatorObject],
) -> dict[int, list[IndicatorObject]]:
    """The objects of the series whose times reach into one of its blocks, by series id."""
    ranges: dict[int, list[int]] = {}
    for o in objects:
        id = ids[o[:3]]
        extent = ranges.get(id)
        if extent is None:
            ranges[id] = [o.ts, o.ts]
        else:
            extent[0], extent[1] = min(extent[0], o.ts), max(extent[1], o.ts)
    hit = reaching_blocks(
        conn, "indicator_blocks", [(id, first, last) for id, (first, last) in ranges.items()]
    )
    found: dict[int, list[IndicatorObject]] = {}
    for o in objects:
        if (id := ids[o[:3]]) in hit:
            found.setdefault(id, []).append(o)
    return found


def _write_blocks(conn: sqlite3.Connection, series: int, patch: Patch) -> None:
    """Merge `patch` into the series' values in the open transaction: the blocks it reaches
    into and the rows in their joint span are read, merged, deleted, and written again as
    blocks."""
    lo, hi = int(patch.ts[0]), int(patch.ts[-1])
    stored: list[Values] = []
    starts: list[int] = []
    for (first, last), values in list(_blocks_back(conn, series, lo, hi)):
        stored.append(values)
        starts.append(first)
        lo = min(lo, first)
        hi = max(hi, last)
    rows = conn.execute(
        "SELECT ts, values_json FROM indicator_values WHERE series = ? AND ts >= ? AND ts <= ?",
        (series, lo, hi),
    ).fetchall()
    if rows:
        objects = decode_objects(text for _, text in rows)
        times = [ts for ts, _ in rows]
        stored.append(rows_patch(zip(times, objects, strict=True)).as_values())
        conn.execute(
            "DELETE FROM indicator_values WHERE series = ? AND ts >= ? AND ts <= ?",
            (series, lo, hi),
        )
    for table in ("indicator_blocks", "indicator_block_values"):
        conn.executemany(
            f"DELETE FROM {table} WHERE series = ? AND first_ts = ?",
            [(series, first) for first in starts],
        )
    blocks = stored_blocks(merge(combine(stored), patch) if stored else patch.as_values())
    conn.executemany(
        "INSERT INTO indicator_blocks (series, first_ts, last_ts, ts_json) VALUES (?, ?, ?, ?)",
        [(series, b.first_ts, b.last_ts, b.ts_json) for b in blocks],
    )
    conn.executemany(
        "INSERT INTO indicator_block_values (series, first_ts, name, values_blob)"
        " VALUES (?, ?, ?, ?)",
        [(series, b.first_ts, name, data) for b in blocks for name, data in b.columns],
    )


def _blocks_back(
    conn: sqlite3.Connection, series: int, lo: int, hi: int,
    names: Sequence[str] | None = None,
) -> Generator[tuple[tuple[int, int], Values]]:
    """The series' blocks that reach into [lo, hi], latest first, each with its first and last
    ts; with `names`, only the values of those names."""
    blocks = conn.execute(_BLOCKS_BEFORE, (series, hi))  # read as far as it is needed
    try:
        for first, last, ts_json in blocks:
            if last < lo:
                return
            sql, params = _BLOCK_VALUES, [series, first]
            if names is not None:
                sql += f" AND name IN ({', '.join('?' * len(names))})"
                params += names
            yield (first, last), block_values(ts_json, conn.execute(sql, params).fetchall())
    finally:
        blocks.close()
