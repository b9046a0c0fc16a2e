"""`TradeBatch`: trades as columns, in arrival order, ready for the compiled candle fold.

A batch holds the distinct markets it touches (`keys`, `(exchange, symbol)` pairs) and one
row per trade: the index of its market, `ts`, `price`, `size`, `side` (an index into `SIDES`)
and its id. Trade ids that are canonical decimal integers (`"0"`, `"4172"`, no sign, no
leading zero, at most 18 digits: what most exchanges send) are kept as int64, which the fold
deduplicates in a compiled table; any other id is kept as a string in `str_ids` (its `ids`
entry is -1) and deduplicated through Python sets. Canonical means the mapping from string to
integer is one to one, so both forms name the same trade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from market.arrays import Floats, Int8s, Int32s, Ints
from market.messages import Side, Trade

SIDES: tuple[Side, ...] = ("buy", "sell", "unknown")
SIDE_CODES = {side: code for code, side in enumerate(SIDES)}
#: Longest integer id kept as int64; 18 digits always fit.
MAX_ID_DIGITS = 18


def integer_id(trade_id: str) -> int:
    """The id as a non-negative integer when it is canonical decimal, else -1."""
    if (
        0 < len(trade_id) <= MAX_ID_DIGITS
        and trade_id.isascii()
        and trade_id.isdigit()
        and (trade_id[0] != "0" or len(trade_id) == 1)
    ):
        return int(trade_id)
    return -1


@dataclass(slots=True)
class TradeBatch:
    """Columns of trades in arrival order. Build with `from_trades` or a decoder."""

    keys: list[tuple[str, str]]
    key_of: Int32s  # int32: index into keys
    ts: Ints  # int64 ns since the epoch, UTC
    price: Floats  # float64
    size: Floats  # float64
    side: Int8s  # int8: index into SIDES
    ids: Ints  # int64: the integer id, or -1 when str_ids holds it
    str_ids: list[str | None] | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def empty(cls) -> TradeBatch:
        return cls(
            [], np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64),
            np.empty(0, np.float64), np.empty(0, np.int8), np.empty(0, np.int64),
        )

    @classmethod
    def from_trades(cls, trades: Sequence[Trade]) -> TradeBatch:
        """Columns of already validated `Trade`s, in their order."""
        index: dict[tuple[str, str], int] = {}
        key_of = [index.setdefault((t.exchange, t.symbol), len(index)) for t in trades]
        ids = [integer_id(t.trade_id) for t in trades]
        str_ids: list[str | None] | None = None
        if any(i < 0 for i in ids):
            str_ids = [t.trade_id if i < 0 else None for t, i in zip(trades, ids, strict=True)]
        return cls(
            list(index),
            np.array(key_of, np.int32),
            np.array([t.ts for t in trades], np.int64),
            np.array([t.price for t in trades], np.float64),
            np.array([t.size for t in trades], np.float64),
            np.array([SIDE_CODES[t.side] for t in trades], np.int8),
            np.array(ids, np.int64),
            str_ids,
        )

    @classmethod
    def concat(cls, batches: Sequence[TradeBatch]) -> TradeBatch:
        """One batch holding the rows of `batches`, in order."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        index: dict[tuple[str, str], int] = {}
        key_of = []
        for b in batches:
            remap = np.array([index.setdefault(k, len(index)) for k in b.keys], np.int32)
            key_of.append(remap[b.key_of])
        str_ids: list[str | None] | None = None
        if any(b.str_ids is not None for b in batches):
            str_ids = []
            for b in batches:
                str_ids.extend(b.str_ids if b.str_ids is not None else [None] * len(b))
        return cls(
            list(index),
            np.concatenate(key_of),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.price for b in batches]),
            np.concatenate([b.size for b in batches]),
            np.concatenate([b.side for b in batches]),
            np.concatenate([b.ids for b in batches]),
            str_ids,
        )

    def trade_id(self, row: int) -> str:
        tid = int(self.ids[row])
        if tid >= 0:
            return str(tid)
        assert self.str_ids is not None
        text = self.str_ids[row]
        assert text is not None
        return text

    def trade(self, row: int) -> Trade:
        """Row `row` as a `Trade`, equal to the one it was made from."""
        exchange, symbol = self.keys[int(self.key_of[row])]
        return Trade(
            exchange, symbol, int(self.ts[row]), float(self.price[row]), float(self.size[row]),
            SIDES[int(self.side[row])],
            self.trade_id(row),
        )
