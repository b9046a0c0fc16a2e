"""The embedded store's two candle layouts together: rows (live writes) and blocks (history).

Whatever mix of the two writes a series gets, it reads back as the same candles as a store
written row by row, and each candle is in one place: blocks do not overlap, and no row lies in
a block's span.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from pathlib import Path

import msgspec
import numpy as np
import pytest

from db.candle_blocks import BLOCK_CANDLES, column_records, merge, resampled, stored_blocks
from db.sqlite import SqliteStore
from market.candle_columns import CandleColumns
from market.messages import Candle

S = 1_000_000_000
M = 60 * S
T0 = 1_700_000_400 * S
KEY = ("sim", "BTC-USDT", "1m")


def minute(i: int, version: int = 0, *, counted: bool = True, closed: bool = True) -> Candle:
    base = 100.0 + i + version / 8
    return Candle(*KEY, T0 + i * M, base, base + 1.5, base - 0.75, base + 0.25,
                  1.0 + (i * 7 + version) % 13 / 4, (i % 5 + 1) if counted else None,
                  base + 0.125 if counted else None, closed)


def as_columns(candles: list[Candle]) -> CandleColumns:
    return CandleColumns.from_candles(candles, [KEY[:2]], [KEY[2]])


def layout(path: Path) -> tuple[list[tuple[int, int]], list[int]]:
    """The series' block spans, and its row times, straight from the file."""
    with sqlite3.connect(path) as db:
        spans = db.execute("SELECT first_ts, last_ts FROM candle_blocks ORDER BY first_ts")
        rows = db.execute("SELECT ts FROM candle_rows ORDER BY ts")
        return [(a, b) for a, b in spans], [ts for (ts,) in rows]


def assert_each_candle_in_one_place(path: Path) -> None:
    spans, rows = layout(path)
    for (_, last), (first, _) in itertools.pairwise(spans):
        assert last < first, spans
    for ts in rows:
        assert not any(first <= ts <= last for first, last in spans), ts


def test_history_over_live_rows_takes_them_into_its_blocks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles([minute(i) for i in range(0, 30, 3)])  # live rows: 0, 3, ..., 27
    store.upsert_candle_columns(as_columns([minute(i, 1) for i in range(10, 20)]))
    want = {i: minute(i) for i in range(0, 30, 3)} | {i: minute(i, 1) for i in range(10, 20)}
    assert store.candles(*KEY) == [want[i] for i in sorted(want)]
    spans, rows = layout(tmp_path / "s.sqlite")
    assert spans == [(T0 + 10 * M, T0 + 19 * M)]
    assert rows == [T0 + i * M for i in (0, 3, 6, 9, 21, 24, 27)]
    store.close()


def test_a_live_write_into_history_is_merged_into_its_block(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    n = 2 * BLOCK_CANDLES + 500
    store.upsert_candle_columns(as_columns([minute(i) for i in range(n)]))
    correction, later = minute(1500, 3), minute(n + 4)
    store.upsert_candles([correction, later])
    got = store.candles(*KEY, limit=10**6)
    assert got == [*(correction if i == 1500 else minute(i) for i in range(n)), later]
    assert store.candles(*KEY, start_ns=correction.ts, limit=1, from_start=True) == [correction]
    # The correction went into its block; the later candle of the same write is a row, so
    # the blocks do not grow with the live writes that follow.
    spans, rows = layout(tmp_path / "s.sqlite")
    assert spans[-1][1] == minute(n - 1).ts and rows == [later.ts]
    store.upsert_candles([minute(n - 1, 2), after := minute(n + 5)])
    assert layout(tmp_path / "s.sqlite") == (spans, [later.ts, after.ts])
    assert store.latest_candles("1m") == [after]
    store.close()


def test_the_latest_candle_is_read_from_its_block(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles([minute(0)])
    store.upsert_candle_columns(as_columns([minute(i, counted=False) for i in range(1, 1200)]))
    assert store.latest_candles("1m") == [minute(1199, counted=False)]
    assert store.latest_candles("1m", exchange="other") == []
    store.close()


def test_reads_across_blocks_and_rows_select_by_range_limit_and_direction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candle_columns(as_columns([minute(i) for i in range(0, 2600)]))
    store.upsert_candles([minute(i) for i in range(2600, 2700)])
    everything = [minute(i) for i in range(2700)]
    assert store.candles(*KEY, limit=1500) == everything[-1500:]
    assert store.candles(*KEY, limit=1500, from_start=True) == everything[:1500]
    start, end = T0 + 990 * M, T0 + 2650 * M
    inside = everything[990:2650]
    assert store.candles(*KEY, start_ns=start, end_ns=end, limit=20) == inside[-20:]
    assert store.candles(*KEY, start_ns=start, end_ns=end, limit=20, from_start=True) == \
        inside[:20]
    frame = store.candles_frame(*KEY, start, end)
    assert frame["ts"].to_list() == [c.ts for c in inside]
    assert frame["vwap"].to_list() == [c.vwap for c in inside]
    store.close()


@pytest.mark.parametrize("seed", range(6))
def test_any_mix_of_writes_reads_as_the_same_writes_row_by_row(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    mixed = SqliteStore(tmp_path / "mixed.sqlite")
    rows_only = SqliteStore(tmp_path / "rows.sqlite")
    for version in range(12):
        first = rng.randrange(0, 3000)
        times = rng.sample(range(first, first + rng.choice([3, 40, 1500])), k=rng.randrange(1, 4))
        if rng.random() < 0.5:
            times = list(range(first, first + rng.choice([5, 700, 2200])))
        candles = [minute(i, version, counted=rng.random() < 0.8, closed=rng.random() < 0.9)
                   for i in times]
        rng.shuffle(candles)
        rows_only.upsert_candles(candles)
        if rng.random() < 0.5:
            mixed.upsert_candle_columns(as_columns(candles))
        else:
            mixed.upsert_candles(candles)
    assert_each_candle_in_one_place(tmp_path / "mixed.sqlite")
    for limit, from_start in ((10**6, False), (777, False), (777, True)):
        assert mixed.candles(*KEY, limit=limit, from_start=from_start) == \
            rows_only.candles(*KEY, limit=limit, from_start=from_start)
    lo, hi = T0 + 1000 * M, T0 + 2500 * M
    assert mixed.candles_frame(*KEY, lo, hi).equals(rows_only.candles_frame(*KEY, lo, hi))
    assert mixed.latest_candles("1m") == rows_only.latest_candles("1m")
    assert mixed.symbol_summaries() == rows_only.symbol_summaries()
    for target in ("5m", "1h"):
        got = mixed.resample(*KEY, target, limit=40)
        want = rows_only.resample(*KEY, target, limit=40)
        assert [msgspec.structs.replace(c, volume=0.0, vwap=None) for c in got] == \
            [msgspec.structs.replace(c, volume=0.0, vwap=None) for c in want]
        for g, w in zip(got, want, strict=True):
            assert g.volume == pytest.approx(w.volume, rel=1e-12)
            assert (g.vwap is None) == (w.vwap is None)
            assert g.vwap is None or g.vwap == pytest.approx(w.vwap, rel=1e-12)
    mixed.close()
    rows_only.close()


def test_sql_reads_every_candle_of_rows_and_blocks_through_the_candles_view(
    tmp_path: Path,
) -> None:
    odd = [
        Candle(*KEY, T0 + 5000 * M, 1e-300, 5e-324, -0.0, 2.5, 0.1 + 0.2, 0, 1e300, False),
        Candle(*KEY, T0 + 5001 * M, 62_000.01, 62_100.5, 61_900.25, 62_050.75, 1.5e-8,
               2**40 + 3, None, True),
    ]
    history = [minute(i, counted=i % 3 != 0) for i in range(1500)] + odd
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candle_columns(as_columns(history))
    store.upsert_candles(live := [minute(i) for i in range(6000, 6010)])
    store.close()
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        got = db.execute(
            "SELECT exchange, symbol, timeframe, ts, open, high, low, close, volume, trades,"
            " vwap, closed FROM candles ORDER BY ts"
        ).fetchall()
    assert [Candle(e, s, tf, ts, o, h, lo, c, v, n, vw, bool(closed))
            for e, s, tf, ts, o, h, lo, c, v, n, vw, closed in got] == [*history, *live]
    assert [repr(row[6]) for row in got[1500:1502]] == ["-0.0", "61900.25"]


def test_merge_keeps_the_latest_written_candle_of_each_time() -> None:
    old = column_records(as_columns([minute(i) for i in (1, 2, 3)]))
    new = column_records(as_columns([minute(3, 1), minute(0, 1), minute(3, 2)]))
    merged = merge([old, new])
    assert merged["ts"].tolist() == [T0 + i * M for i in (0, 1, 2, 3)]
    assert merged["open"].tolist() == [minute(0, 1).open, minute(1).open, minute(2).open,
                                       minute(3, 2).open]


def test_blocks_hold_at_most_their_size_and_cover_every_record() -> None:
    records = column_records(as_columns([minute(i) for i in range(2 * BLOCK_CANDLES + 1)]))
    blocks = stored_blocks(records)
    assert [len(b.data) // records.itemsize for b in blocks] == [BLOCK_CANDLES, BLOCK_CANDLES, 1]
    assert [b.first_ts for b in blocks] == [T0, T0 + BLOCK_CANDLES * M, T0 + 2 * BLOCK_CANDLES * M]
    assert blocks[0].last_ts == T0 + (BLOCK_CANDLES - 1) * M


def test_a_bucket_has_a_count_and_vwap_only_when_every_candle_has() -> None:
    candles = [minute(i, counted=i != 7) for i in range(10)]
    buckets = resampled(column_records(as_columns(candles)), 5 * M, 10, True)
    assert [b[0] for b in buckets] == [T0, T0 + 5 * M]
    assert buckets[0][6] == sum(c.trades or 0 for c in candles[:5])
    assert buckets[1][6] is None and buckets[1][7] is None
    assert buckets[0][7] == pytest.approx(sum((c.vwap or 0.0) * c.volume for c in candles[:5]))
    assert buckets[0][1:6] == (candles[0].open, max(c.high for c in candles[:5]),
                              min(c.low for c in candles[:5]), candles[4].close,
                              pytest.approx(sum(c.volume for c in candles[:5])))
    newest = resampled(column_records(as_columns(candles)), 5 * M, 1, False)
    assert [b[0] for b in newest] == [T0 + 5 * M]
    assert np.isclose(newest[0][5], sum(c.volume for c in candles[5:]))
