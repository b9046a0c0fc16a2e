"""What a backfill fetches: edges for an incremental run, holes for a repair, minus gaps."""

from __future__ import annotations

import numpy as np

from market.history_ranges import (
    align,
    bucket_count,
    edge_ranges,
    hole_ranges,
    subtract,
    unreturned,
)

M = 60


def test_a_range_is_narrowed_to_whole_buckets() -> None:
    assert align(61, 299, M) == (120, 240)
    assert align(120, 130, M) == (120, 120)


def test_an_incremental_run_fetches_before_the_first_and_after_the_last_stored() -> None:
    assert edge_ranges(0, 10 * M, M, None) == [(0, 10 * M)]
    assert edge_ranges(0, 10 * M, M, (3 * M, 5 * M)) == [(0, 3 * M), (6 * M, 10 * M)]
    assert edge_ranges(4 * M, 5 * M, M, (3 * M, 5 * M)) == []
    assert edge_ranges(0, 10 * M, M, (3 * M, 5 * M), known=[(0, 2 * M)]) == [
        (2 * M, 3 * M), (6 * M, 10 * M)
    ]


def test_a_repair_finds_every_missing_bucket_but_the_known_gaps() -> None:
    stored = np.array([2, 3, 4, 7, 9], dtype=np.int64) * M
    assert hole_ranges(0, 12 * M, M, stored) == [
        (0, 2 * M), (5 * M, 7 * M), (8 * M, 9 * M), (10 * M, 12 * M)
    ]
    assert hole_ranges(0, 12 * M, M, stored, known=[(5 * M, 6 * M), (10 * M, 12 * M)]) == [
        (0, 2 * M), (6 * M, 7 * M), (8 * M, 9 * M)
    ]
    assert hole_ranges(2 * M, 5 * M, M, stored) == []


def test_the_buckets_a_source_did_not_return_are_its_gaps() -> None:
    assert unreturned((0, 6 * M), [M, 2 * M, 4 * M], M) == [(0, M), (3 * M, 4 * M), (5 * M, 6 * M)]
    assert unreturned((0, 3 * M), [], M) == [(0, 3 * M)]


def test_subtracting_overlapping_cuts_merges_what_is_left() -> None:
    assert subtract([(0, 10), (10, 20)], [(3, 5), (4, 8), (15, 30)]) == [(0, 3), (8, 15)]
    assert bucket_count([(0, 3 * M), (5 * M, 6 * M)], M) == 4
