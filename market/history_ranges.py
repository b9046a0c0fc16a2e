"""Which candles of a series a backfill fetches: ranges of bucket starts, [start, end) in ns.

- `edge_ranges`: what an incremental run fetches, as Freqtrade's `download-data` does: the
  part of the asked range before the first stored candle and after the last one.
- `hole_ranges`: what `--repair` fetches: every bucket of the asked range with no stored
  candle, holes inside the stored span included.
- Both leave out `known` gaps (buckets the source is known to have no candle for).
- `unreturned`: after a fetch, the buckets of the fetched range the source did not return:
  gaps to remember, so they are not asked for again and again.

Buckets align to the epoch (`step` is the timeframe's width); ranges are sorted and disjoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from market.arrays import Ints

Range = tuple[int, int]


def align(start: int, end: int, step: int) -> Range:
    """[start, end) narrowed to whole buckets: the first bucket starting at or after `start`,
    up to the last one ending at or before `end`."""
    lo = -(-start // step) * step
    hi = end - end % step
    return lo, max(lo, hi)


def subtract(ranges: Iterable[Range], known: Iterable[Range]) -> list[Range]:
    """`ranges` without the parts covered by `known` (either may be unsorted or overlap)."""
    cuts = sorted(known)
    out: list[Range] = []
    for start, end in sorted(ranges):
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                out.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
            if cursor >= end:
                break
        if cursor < end:
            out.append((cursor, end))
    return _merge(out)


def _merge(ranges: Iterable[Range]) -> list[Range]:
    merged: list[Range] = []
    for start, end in sorted(ranges):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def edge_ranges(
    start: int, end: int, step: int, stored: Range | None, known: Sequence[Range] = ()
) -> list[Range]:
    """The buckets of [start, end) before the first stored one and after the last one
    (`stored` is (first, last) bucket start, or None when nothing is stored)."""
    lo, hi = align(start, end, step)
    if stored is None:
        wanted = [(lo, hi)]
    else:
        first, last = stored
        wanted = [(lo, min(hi, first)), (max(lo, last + step), hi)]
    return subtract(wanted, known)


def hole_ranges(
    start: int, end: int, step: int, stored_ts: Ints, known: Sequence[Range] = ()
) -> list[Range]:
    """Every bucket of [start, end) missing from `stored_ts` (sorted bucket starts), as
    ranges."""
    lo, hi = align(start, end, step)
    if hi <= lo:
        return []
    inside = stored_ts[(stored_ts >= lo) & (stored_ts < hi)]
    inside = inside[inside % step == 0]
    edges = np.concatenate(([lo - step], inside, [hi]))
    jumps = np.flatnonzero(np.diff(edges) > step)
    holes = [(int(edges[i]) + step, int(edges[i + 1])) for i in jumps]
    return subtract(holes, known)


def unreturned(fetched: Range, returned: Sequence[int], step: int) -> list[Range]:
    """The buckets of `fetched` that are not among the `returned` bucket starts."""
    ts = np.asarray(sorted(returned), dtype=np.int64)
    return hole_ranges(fetched[0], fetched[1], step, ts)


def bucket_count(ranges: Iterable[Range], step: int) -> int:
    """How many buckets the ranges hold."""
    return sum((end - start) // step for start, end in ranges)
