"""The embedded store's blocks of indicator history (`db.indicator_blocks`): they read back
bit for bit, by Python and by SQLite's view; writes of blocks and of rows, in any order
and overlap, read back as a model of the store's semantics says; each value is in one place."""

from __future__ import annotations

import itertools
import math
import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

import db.indicator_blocks
import db.sqlite_indicators
from db.columns import IndicatorTable
from db.indicator_blocks import Values, block_values, stored_blocks
from db.indicator_store import IndicatorValues
from db.sqlite import SqliteStore

M = 60 * 1_000_000_000
KEY = ("sim", "BTC-USDT", "1m")
NAMES = ("a", "b", "c", "d")


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


ODD = [1e-300, -1e300, 5e-324, -2.2250738585072014e-308, 2.225073858507201e-308, -0.0, 0.0,
       1 / 3, 2e-7, 123456789.125, 1.7976931348623157e308, -62000.01, 1.0, math.pi]


def odd_values() -> tuple[np.ndarray, np.ndarray]:
    """Times from the widest int64 range, and doubles of every kind: subnormal, signed zero,
    extremes, no value (NaN, infinities)."""
    ts = np.array([-(2**63), -10, 0, 1_700_000_000_000_000_000, 2**63 - 1], np.int64)
    values = np.array(ODD + [np.nan] * 1).reshape(5, 3)
    values[4] = [np.inf, -np.inf, np.nan]
    return ts, values


def test_a_block_reads_back_bit_for_bit() -> None:
    ts, values = odd_values()
    (block,) = stored_blocks(Values(ts, ("x", "y", "z"), values))
    assert (block.first_ts, block.last_ts) == (-(2**63), 2**63 - 1)
    assert [(name, len(data)) for name, data in block.columns] == [
        ("x", 40), ("y", 40), ("z", 40)]  # 8 bytes a value
    back = block_values(block.ts_json, block.columns)
    assert back.names == ("x", "y", "z")
    assert back.ts.tolist() == ts.tolist()
    finite = np.where(np.isfinite(values), values, np.nan)  # an infinity is no value
    assert bits(back.values.ravel().tolist()) == bits(finite.ravel().tolist())


def test_sql_reads_the_same_doubles_from_a_block(tmp_path: Path) -> None:
    ts, values = odd_values()
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    store.upsert_indicator_table(IndicatorTable(*KEY, ("x", "y", "z"), ts, values,
                                                np.ones(len(ts), np.bool_)))
    with closing(sqlite3.connect(path)) as conn:
        long = conn.execute("SELECT ts, name, value FROM indicators").fetchall()
    expected = [(int(t), name, v) for t, row in zip(ts.tolist(), values.tolist(), strict=True)
                for name, v in zip(("x", "y", "z"), row, strict=True) if math.isfinite(v)]
    assert sorted(long) == sorted(expected)
    by_key = {(t, n): v for t, n, v in long}
    assert bits([by_key[t, n] for t, n, _ in expected]) == bits([v for *_, v in expected])


def test_rows_without_names_and_long_values_split_into_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db.indicator_blocks, "BLOCK_ROWS", 4)
    ts = np.arange(10, dtype=np.int64) * M
    blocks = stored_blocks(Values(ts, (), np.empty((10, 0))))
    assert [(b.first_ts, b.last_ts) for b in blocks] == [(0, 3 * M), (4 * M, 7 * M),
                                                          (8 * M, 9 * M)]
    assert blocks[0].ts_json == f"[0,{M},{2 * M},{3 * M}]"
    assert blocks[0].columns == []
    assert block_values(blocks[2].ts_json, blocks[2].columns).ts.tolist() == [8 * M, 9 * M]
    # A name without a value in a block has no column there; it reads back as no value.
    values = np.full((10, 2), np.nan)
    values[:5, 0] = 1.0
    values[2, 1] = 2.0
    blocks = stored_blocks(Values(ts, ("a", "b"), values))
    assert [[name for name, _ in b.columns] for b in blocks] == [["a", "b"], ["a"], []]


class Model:
    """What the store should hold: every ts written, and its values by name."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, float]] = {}
        self.names: set[str] = set()

    def table(self, ts: list[int], values: np.ndarray, replace: list[bool]) -> None:
        for t, row, whole in zip(ts, values.tolist(), replace, strict=True):
            stored = self.rows.setdefault(t, {})
            for name, value in zip(NAMES, row, strict=True):
                if whole or math.isfinite(value):
                    stored.pop(name, None)
                    if math.isfinite(value):
                        stored[name] = value
                    self.names.add(name)

    def values(self, ts: list[int], rows: list[dict[str, float]]) -> None:
        for t, row in zip(ts, rows, strict=True):
            stored = self.rows.setdefault(t, {})
            for name, value in row.items():
                stored.pop(name, None)
                if math.isfinite(value):
                    stored[name] = value
                self.names.add(name)

    def read(self, names: list[str] | None, lo: int, hi: int, limit: int) -> list[tuple]:
        columns = sorted(self.names) if names is None else names
        times = [t for t in sorted(self.rows) if lo <= t < hi and (
            names is None or any(n in self.rows[t] for n in names))]
        times = times[len(times) - limit:] if limit else []
        return [(t, *(self.rows[t].get(n) for n in columns)) for t in times]


def random_values(rng: np.random.Generator, n: int) -> np.ndarray:
    values = np.round(rng.normal(100, 10, (n, len(NAMES))), 3)
    values[rng.random((n, len(NAMES))) < 0.3] = np.nan
    return values


@pytest.mark.parametrize("seed", range(12))
def test_writes_of_blocks_and_rows_in_any_order_read_back_as_the_model_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(db.indicator_blocks, "BLOCK_ROWS", 5)
    rng = np.random.default_rng(seed)
    path = tmp_path / "s.sqlite"
    store, model = SqliteStore(path), Model()
    for _ in range(14):
        start, count = int(rng.integers(0, 40)), int(rng.integers(1, 14))
        ts = sorted({int(t) * M for t in rng.integers(start, start + 2 * count, count)})
        values = random_values(rng, len(ts))
        if rng.random() < 0.5:  # history: a table, some rows replacing
            replace = (rng.random(len(ts)) < 0.4).tolist()
            store.upsert_indicator_table(IndicatorTable(
                *KEY, NAMES, np.array(ts, np.int64), values, np.array(replace)))
            model.table(ts, values, replace)
        else:  # live: rows holding some of the names, NaN removing
            rows = [{n: v for n, v in zip(NAMES, row, strict=True) if rng.random() < 0.6}
                    for row in values.tolist()]
            store.upsert_indicator_values([IndicatorValues(*KEY, t, r)
                                           for t, r in zip(ts, rows, strict=True)])
            model.values(ts, rows)
    for names in (None, ["a"], ["b", "d"]):
        for lo, hi, limit in ((0, 200 * M, 1000), (10 * M, 30 * M, 1000), (0, 200 * M, 7),
                              (5 * M, 60 * M, 3), (0, 200 * M, 0)):
            frame = store.indicators(*KEY, names, start_ns=lo, end_ns=hi, limit=limit)
            assert frame.rows() == model.read(names, lo, hi, limit), (names, lo, hi, limit)
    with closing(sqlite3.connect(path)) as conn:
        spans = conn.execute(
            "SELECT first_ts, last_ts FROM indicator_blocks ORDER BY first_ts").fetchall()
        loose = [row[0] for row in conn.execute("SELECT ts FROM indicator_values")]
        orphans = conn.execute(
            "SELECT count(*) FROM indicator_block_values AS v WHERE NOT EXISTS (SELECT 1"
            " FROM indicator_blocks AS b WHERE b.series = v.series AND b.first_ts = v.first_ts)"
        ).fetchone()[0]
        long = conn.execute(
            "SELECT ts, name, value FROM indicators ORDER BY ts, name").fetchall()
    # Blocks do not overlap, and no row lies in a block's span.
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    assert not [t for t in loose if any(f <= t <= last for f, last in spans)]
    assert orphans == 0  # a block's values go with it
    # SQLite's own view reads the same values.
    assert long == sorted((t, n, v) for t, row in model.rows.items() for n, v in row.items())


def test_a_backfill_over_live_rows_takes_them_into_its_blocks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_indicator_values([IndicatorValues(*KEY, 3 * M, {"a": 1.0, "z": 5.0})])
    store.upsert_indicator_values([IndicatorValues(*KEY, 50 * M, {"a": 9.0})])
    ts = np.arange(10, dtype=np.int64) * M
    store.upsert_indicator_table(IndicatorTable(
        *KEY, ("a",), ts, np.arange(10, dtype=np.float64).reshape(10, 1) + 0.5,
        np.zeros(10, np.bool_)))
    frame = store.indicators(*KEY)
    assert frame.columns == ["ts", "a", "z"]
    assert frame.rows()[3] == (3 * M, 3.5, 5.0)
    assert frame.rows()[-1] == (50 * M, 9.0, None)
    with closing(sqlite3.connect(tmp_path / "s.sqlite")) as conn:
        assert conn.execute("SELECT ts FROM indicator_values").fetchall() == [(50 * M,)]


def test_a_file_with_the_earlier_view_gets_one_that_reads_the_blocks(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    store.upsert_indicator_table(IndicatorTable(
        *KEY, ("a",), np.array([0], np.int64), np.array([[2.5]]), np.zeros(1, np.bool_)))
    store.close()
    with closing(sqlite3.connect(path)) as conn, conn:  # the view before indicator_blocks
        conn.executescript("""
            DROP VIEW indicators;
            CREATE VIEW indicators (exchange, symbol, timeframe, ts, name, value) AS
            SELECT s.exchange, s.symbol, s.timeframe, v.ts, j.key, j.value
            FROM indicator_values AS v JOIN series_ids AS s ON s.id = v.series,
                 json_each(v.values_json) AS j
            WHERE j.type != 'null';
        """)
        assert conn.execute("SELECT count(*) FROM indicators").fetchone() == (0,)
    SqliteStore(path).close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT ts, name, value FROM indicators").fetchall() == [
            (0, "a", 2.5)]


def test_a_read_sees_one_commit_while_a_history_write_moves_rows_into_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite"
    reader, writer = SqliteStore(path), SqliteStore(path)
    writer.upsert_indicator_values([IndicatorValues(*KEY, 3 * M, {"a": 1.0})])
    history = IndicatorTable(*KEY, ("a",), np.arange(5, dtype=np.int64) * M,
                             np.full((5, 1), 2.0), np.ones(5, np.bool_))
    read_rows = db.sqlite_indicators._newest_rows

    def rows_then_a_history_write(*args: object, **kwargs: object) -> list[tuple[int, str]]:
        rows = read_rows(*args, **kwargs)  # type: ignore[arg-type]
        writer.upsert_indicator_table(history)  # another connection commits meanwhile
        return rows

    monkeypatch.setattr(db.sqlite_indicators, "_newest_rows", rows_then_a_history_write)
    assert reader.indicators(*KEY).rows() == [(3 * M, 1.0)]  # before the write, whole
    assert reader.indicators(*KEY).rows() == [(t * M, 2.0) for t in range(5)]  # after it
