"""A series' indicator values as blocks of rows: how history is stored in the embedded store.

A history write (an import, a backfill: `db.columns.IndicatorTable`, thousands of candles of
one series) is stored as blocks of up to `BLOCK_ROWS` candle times, each a row of the
`indicator_blocks` table and a row of `indicator_block_values` per name (see
`db.sqlite_tables`), instead of a row per candle: SQLite's cost per row and the JSON objects
were most of an import's time.

A block is `Values`: the times, the names, and a value matrix with NaN where a name has no
value. It is stored (`StoredBlock`) as the times in a JSON array and, per name, the values as
big-endian doubles: 8 bytes a value, written and read without a Python object per value. SQL
reads them too (the `indicators` view of `db.sqlite_tables`).

Writes are `Patch`es merged into what is stored (`merge`), with the semantics of the row
store: a written cell takes the patch's value (NaN removes the stored one), any other cell
keeps the stored value, and a candle time once written stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import orjson

#: Candle times per stored block at most: a name's values of a block (3,840 bytes) then fill one
#: 4 KiB page, and SQL reads a value from that page alone (a row longer than a page goes on in
#: overflow pages, which SQLite reads again for every value SQL takes from it). A read of the
#: newest 1,000 decodes three blocks.
BLOCK_ROWS = 480



class Values(NamedTuple):
    """Values of one series: `values[r, k]` is `names[k]` at `ts[r]`, NaN for no value; `ts`
    ascending, without repeats."""

    ts: np.ndarray  # int64
    names: tuple[str, ...]
    values: np.ndarray  # float64, (len(ts), len(names))

    @classmethod
    def empty(cls) -> Values:
        return cls(np.empty(0, np.int64), (), np.empty((0, 0), np.float64))


class Patch(NamedTuple):
    """A write: where `written[r, k]`, `names[k]` at `ts[r]` becomes `values[r, k]` (NaN
    removes it); elsewhere the stored value stays, and `values` holds no number. `ts`
    ascending, without repeats."""

    ts: np.ndarray  # int64
    names: tuple[str, ...]
    values: np.ndarray  # float64, (len(ts), len(names))
    written: np.ndarray  # bool, (len(ts), len(names))

    def as_values(self) -> Values:
        """The values this patch leaves when nothing was stored (an infinity is stored as no
        value, `stored_blocks`)."""
        return Values(self.ts, self.names, self.values)


def table_patch(
    ts: np.ndarray, names: Sequence[str], values: np.ndarray, replace: np.ndarray
) -> Patch:
    """An `IndicatorTable`'s rows as a patch: a replacing row writes every name, another row
    its numbers. Rows are put in time order; of rows with the same ts the last wins."""
    ts, values, replace = np.asarray(ts, np.int64), np.asarray(values, np.float64), replace
    if len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all()):
        order = np.argsort(ts, kind="stable")
        ts, values, replace = ts[order], values[order], replace[order]
        last = np.append(ts[1:] != ts[:-1], True)
        ts, values, replace = ts[last], values[last], replace[last]
    written = np.asarray(replace, np.bool_)[:, None] | np.isfinite(values)
    return Patch(ts, tuple(names), values, written)


def rows_patch(rows: Iterable[tuple[int, Mapping[str, float | None]]]) -> Patch:
    """(ts, values by name) rows of one series as a patch: each writes the names it holds
    (None or a non-finite number removes the value). Of rows with the same ts the last wins."""
    by_ts = dict(rows)
    names = tuple(sorted({name for values in by_ts.values() for name in values}))
    column = {name: k for k, name in enumerate(names)}
    ts = np.array(sorted(by_ts), np.int64)
    values = np.full((len(ts), len(names)), np.nan)
    written = np.zeros((len(ts), len(names)), np.bool_)
    for r, t in enumerate(ts.tolist()):
        for name, value in by_ts[t].items():
            written[r, column[name]] = True
            if value is not None:
                values[r, column[name]] = value
    return Patch(ts, names, values, written)


def combine(parts: Sequence[Values]) -> Values:
    """Stored values from places that hold different times (blocks, rows) as one."""
    parts = [p for p in parts if len(p.ts)]
    if not parts:
        return Values.empty()
    names = tuple(sorted({name for p in parts for name in p.names}))
    ts = np.concatenate([p.ts for p in parts])
    values = np.concatenate([_widen(p, names) for p in parts])
    order = np.argsort(ts, kind="stable")
    return Values(ts[order], names, values[order])


def merge(stored: Values, patch: Patch) -> Values:
    """What the store holds after writing `patch` over `stored` (see the module docstring)."""
    names = tuple(sorted(set(stored.names) | set(patch.names)))
    ts = np.union1d(stored.ts, patch.ts)
    values = np.full((len(ts), len(names)), np.nan)
    columns = np.array([names.index(name) for name in stored.names], np.int64)
    values[np.ix_(np.searchsorted(ts, stored.ts), columns)] = stored.values
    rows = np.searchsorted(ts, patch.ts)
    for k, name in enumerate(patch.names):
        written = patch.written[:, k]
        values[rows[written], names.index(name)] = patch.values[written, k]
    return Values(ts, names, values)


def _widen(part: Values, names: tuple[str, ...]) -> np.ndarray:
    """The part's matrix with a column per name of `names` (NaN where it has none)."""
    if part.names == names:
        return part.values
    out = np.full((len(part.ts), len(names)), np.nan)
    out[:, [names.index(name) for name in part.names]] = part.values
    return out


# Stored form -----------------------------------------------------------------------------
#: The one NaN blocks hold (bytes 7FF8000000000000), for no value: a non-finite number is no
#: value, as in a row.
_NO_VALUE = np.float64(np.nan)
#: Big-endian doubles: SQL reads the bytes in their order (`db.sqlite_tables.INDICATORS_VIEW`).
_STORED = np.dtype(">f8")


class StoredBlock(NamedTuple):
    """One row of `indicator_blocks` (first and last ts, the times as a JSON array) and its
    rows of `indicator_block_values`: per name with a value in the block, the values as
    big-endian doubles, NaN for none."""

    first_ts: int
    last_ts: int
    ts_json: str
    columns: list[tuple[str, bytes]]


def stored_blocks(values: Values) -> list[StoredBlock]:
    """The values as blocks of at most `BLOCK_ROWS` rows, oldest first."""
    finite = np.isfinite(values.values)
    # One pass each: transposed into a name-major copy, no value made the one NaN, swapped to
    # big-endian in place (a third of `np.where(...).astype(...).T.copy()`'s time).
    matrix = np.empty(values.values.shape[::-1])
    matrix[...] = values.values.T
    np.copyto(matrix, _NO_VALUE, where=~finite.T)
    matrix = matrix.byteswap(inplace=True).view(_STORED)
    blocks = []
    for first in range(0, len(values.ts), BLOCK_ROWS):
        end = first + BLOCK_ROWS
        ts = values.ts[first:end]
        some = finite[first:end].any(axis=0).tolist()
        blocks.append(StoredBlock(
            int(ts[0]), int(ts[-1]), orjson.dumps(ts, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
            [(name, matrix[k, first:end].tobytes())
             for k, name in enumerate(values.names) if some[k]],
        ))
    return blocks


def block_values(ts_json: str, columns: Sequence[tuple[str, bytes]]) -> Values:
    """A stored block as `Values`."""
    ts = np.array(orjson.loads(ts_json), np.int64)
    matrix = np.empty((len(ts), len(columns)))
    for k, (_, data) in enumerate(columns):
        matrix[:, k] = np.frombuffer(data, _STORED)
    return Values(ts, tuple(name for name, _ in columns), matrix)
