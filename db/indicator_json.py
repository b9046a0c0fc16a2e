"""Indicator rows as the embedded store's JSON objects, thousands at a time.

`orjson` writes the whole value matrix in one call (each float in its shortest form that
reads back to the same double, NaN and infinities as `null`); a compiled pass then splices
the names in, row by row, leaving out a `null` where the row keeps the stored value. The
objects are those `msgspec` writes for the same values as a dict, but for number
spellings (`1e-7` for `1e-07`), which read back to the same doubles.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import orjson
from numba import njit

_COMMA, _CLOSE, _NULL_N = ord(","), ord("]"), ord("n")
_LEFT_BRACE, _RIGHT_BRACE = ord("{"), ord("}")
#: Rows encoded at a time.
BLOCK_ROWS = 2048


@functools.lru_cache(maxsize=64)
def _keys(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every name as `"name":`, concatenated, and where each ends."""
    parts = [orjson.dumps(name) + b":" for name in names]
    ends = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
    return np.frombuffer(b"".join(parts), np.uint8), ends


@njit(cache=True, nogil=True)
def _splice(
    src: np.ndarray, keys: np.ndarray, key_ends: np.ndarray, n_rows: int, n_cols: int,
    whole: np.ndarray, out: np.ndarray, ends: np.ndarray,
) -> None:
    """`src` is `[[v,...],[v,...]]`; write `{"name":v,...}` per row to `out`, back to back,
    and where each ends to `ends`. A `null` is left out unless the row is `whole`."""
    i = 1
    o = 0
    for r in range(n_rows):
        i += 1  # the row's '['
        out[o] = _LEFT_BRACE
        o += 1
        for c in range(n_cols):
            null = src[i] == _NULL_N
            if whole[r] or not null:
                if out[o - 1] != _LEFT_BRACE:
                    out[o] = _COMMA
                    o += 1
                for k in range(key_ends[c], key_ends[c + 1]):
                    out[o] = keys[k]
                    o += 1
                while src[i] != _COMMA and src[i] != _CLOSE:
                    out[o] = src[i]
                    o += 1
                    i += 1
            else:
                i += 4
            i += 1  # the ',' after the value, or the row's ']'
        if n_cols == 0:
            i += 1  # the row's ']'
        out[o] = _RIGHT_BRACE
        o += 1
        ends[r] = o
        i += 1  # ',' between rows, or the final ']'


def json_objects(names: Sequence[str], values: np.ndarray, whole: np.ndarray) -> list[str]:
    """Row r of `values` (float64, one column per name) as a JSON object; a NaN or infinity
    is written as `null` where `whole[r]`, and left out elsewhere."""
    keys, key_ends = _keys(tuple(names))
    values = np.ascontiguousarray(values, np.float64)
    whole = np.ascontiguousarray(whole, np.bool_)
    objects: list[str] = []
    out = np.empty(0, np.uint8)
    ends = np.empty(BLOCK_ROWS, np.int64)
    # A block at a time, so the buffers stay in the processor's cache.
    for first in range(0, values.shape[0], BLOCK_ROWS):
        block = values[first:first + BLOCK_ROWS]
        n = block.shape[0]
        src = np.frombuffer(orjson.dumps(block, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
        size = src.shape[0] + n * keys.shape[0] + 2
        if out.shape[0] < size:
            out = np.empty(size, np.uint8)
        _splice(src, keys, key_ends, n, len(names), whole[first:first + n], out, ends)
        text = str(out[:ends[n - 1]].data, "ascii")
        bounds = ends[:n].tolist()
        objects += [text[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]
    return objects
