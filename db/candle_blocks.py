"""A series' candles as blocks of records: how the embedded store keeps candle history.

History (an import, a backfill: `upsert_candle_columns`, thousands of candles of a series at a
time) is stored as blocks of up to `BLOCK_CANDLES` candles of one series, each a row of
`candle_blocks` holding the candles as packed little-endian records (`RECORD`, 65 bytes a
candle), instead of a row per candle: SQLite's cost per row was most of an import of candles.
The live flow's candles, a few per series per batch, stay rows of `candles`. The blocks of a
series do not overlap, and no `candles` row of the series lies in a block's span (a write
there is merged into the block), so each candle is in one place.

Records are the candle columns of `market.candle_columns.CandleColumns` with its conventions:
`trades` is `UNKNOWN_TRADES` and `vwap` NaN where a candle carries neither; `closed` is 0 or 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from market.candle_columns import UNKNOWN_TRADES, CandleColumns
from market.messages import Candle

#: Candles per stored block at most: 63 KiB a block. A read of the newest 1,000 candles
#: decodes one or two blocks.
BLOCK_CANDLES = 1000

#: The fields of a record, in order: those of `CandleColumns` but its market and timeframe.
FIELDS = ("ts", "open", "high", "low", "close", "volume", "trades", "vwap", "closed")
_KINDS = ("<i8", "<f8", "<f8", "<f8", "<f8", "<f8", "<i8", "<f8", "u1")
RECORD = np.dtype(list(zip(FIELDS, _KINDS, strict=True)))
#: Where each field of a record starts, in bytes.
OFFSETS: dict[str, int] = dict(zip(
    FIELDS, itertools.accumulate((np.dtype(kind).itemsize for kind in _KINDS[:-1]), initial=0),
    strict=True,
))

#: The columns of a `candles` row that make a record, in `RECORD` order.
ROW_COLUMNS = ", ".join(FIELDS)


class StoredBlock(NamedTuple):
    """One row of `candle_blocks`: its first and last candle start, and the records."""

    first_ts: int
    last_ts: int
    data: bytes


def column_records(columns: CandleColumns, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
    """The candles `rows` of `columns` as records, in their order."""
    out = np.empty(len(columns.ts[rows]), RECORD)
    for name in FIELDS:
        out[name] = getattr(columns, name)[rows]
    return out


def row_records(rows: Sequence[Sequence[object]]) -> np.ndarray:
    """`candles` rows of `ROW_COLUMNS` (NULL trades and vwap for none) as records."""
    out = np.empty(len(rows), RECORD)
    if not rows:
        return out
    ts, open_, high, low, close, volume, trades, vwap, closed = zip(*rows, strict=True)
    out["ts"], out["open"], out["high"], out["low"] = ts, open_, high, low
    out["close"], out["volume"], out["closed"] = close, volume, closed
    out["trades"] = [UNKNOWN_TRADES if t is None else t for t in trades]
    out["vwap"] = [np.nan if v is None else v for v in vwap]
    return out


def record_candles(key: tuple[str, str, str], records: np.ndarray) -> list[Candle]:
    """Records as candles of the series `key`."""
    exchange, symbol, timeframe = key
    return [
        Candle(exchange, symbol, timeframe, ts, o, h, lo, c, v, None if n < 0 else n,
               None if vw != vw else vw, bool(closed))
        for ts, o, h, lo, c, v, n, vw, closed in records.tolist()
    ]


def merge(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Records of one series as one run in time order, without repeats: of records with the
    same start, the one in the later part wins, and within a part the later one."""
    records = np.concatenate(parts) if len(parts) != 1 else parts[0]
    ts = records["ts"]
    if len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all()):
        records = records[np.argsort(ts, kind="stable")]
        ts = records["ts"]
        records = records[np.append(ts[1:] != ts[:-1], True)]
    return records


def stored_blocks(records: np.ndarray) -> list[StoredBlock]:
    """Records in time order as blocks of at most `BLOCK_CANDLES`, oldest first."""
    ts = records["ts"]
    return [
        StoredBlock(int(ts[first]), int(ts[min(first + BLOCK_CANDLES, len(ts)) - 1]),
                    records[first:first + BLOCK_CANDLES].tobytes())
        for first in range(0, len(records), BLOCK_CANDLES)
    ]


def block_records(data: bytes) -> np.ndarray:
    """A stored block's records (read-only, over `data`)."""
    return np.frombuffer(data, RECORD)


def in_range(records: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The records (in time order) that start in [lo, hi)."""
    ts = records["ts"]
    return records[int(np.searchsorted(ts, lo)):int(np.searchsorted(ts, hi))]


def resampled(records: np.ndarray, step: int, limit: int, from_start: bool) -> list[tuple]:
    """Records of a series in time order as buckets of `step` ns: the oldest `limit` with
    `from_start`, else the newest, oldest first; each (bucket start, open, high, low, close,
    volume, trades, Σ vwap·volume, all closed), with trades None unless every candle of the
    bucket has a count, and Σ vwap·volume None unless every one has a VWAP.

    A bucket starts at `ts - ts % step` (the remainder with the sign of ts, as SQL's `%`).
    Sums run with numpy's `add.reduceat`, which sums a long bucket pairwise: volumes equal a
    sum in time order to within a few units in the last place.
    """
    if not len(records) or limit <= 0:
        return []
    ts = records["ts"]
    bucket = ts - np.fmod(ts, step)
    starts = np.flatnonzero(np.append(True, bucket[1:] != bucket[:-1]))
    ends = np.append(starts[1:], len(ts))
    chosen = slice(None, limit) if from_start else slice(-limit, None)
    starts, ends = starts[chosen], ends[chosen]
    part = records[starts[0]:ends[-1]]
    starts, last = starts - starts[0], ends - 1 - starts[0]
    trades, vwap, volume = part["trades"], part["vwap"], part["volume"]
    no_vwap = np.isnan(vwap)
    columns = (
        part["ts"][starts] - np.fmod(part["ts"][starts], step),
        part["open"][starts], np.maximum.reduceat(part["high"], starts),
        np.minimum.reduceat(part["low"], starts), part["close"][last],
        np.add.reduceat(volume, starts),
        np.add.reduceat(np.maximum(trades, 0), starts),
        np.add.reduceat(np.where(no_vwap, 0.0, vwap * volume), starts),
        np.minimum.reduceat(part["closed"], starts),
        np.minimum.reduceat(trades, starts) >= 0,
        ~np.logical_or.reduceat(no_vwap, starts),
    )
    return [
        (b, o, h, lo, c, v, n if has_n else None, x if has_x else None, bool(closed))
        for b, o, h, lo, c, v, n, x, closed, has_n, has_x in zip(
            *(column.tolist() for column in columns), strict=True
        )
    ]
