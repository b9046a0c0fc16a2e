"""The order trades are folded in, and which repeats are dropped: one rule for imports and
replays, so both give the same candles.

Trades go by time, then integer trade id, then the order in which they were given (stored
trades before new ones, then files by path, each in its own order); a trade whose id came
earlier for the same market is dropped, so the first copy in that order is the one kept.
Exchanges number trades in the order they happen, so within one exchange's file this is the
file's own order; trades with text ids (or none) at one instant keep their file's order.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def fold_order(rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """`rows` (`flows.files.rows.TRADE_COLUMNS`) in fold order without repeated ids, and
    the number of repeats dropped."""
    if not len(rows):
        return rows, 0
    if rows["sid"].null_count() == len(rows):
        ts = rows["ts"].to_numpy()
        ids = rows["id"].to_numpy()
        # Already in order with every id new (a single exchange file): nothing to do.
        if bool(np.all(ts[1:] >= ts[:-1])) and bool(np.all(ids[1:] > ids[:-1])):
            return rows, 0
    ordered = rows.sort(["ts", "id"], maintain_order=True)
    unique = ordered.unique(subset=["id", "sid"], keep="first", maintain_order=True)
    return unique, len(ordered) - len(unique)
