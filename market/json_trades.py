"""Decoding trade messages straight into `TradeBatch` columns, exactly as msgspec would.

Two paths give the same trades:
- The fast path, compiled by numba, reads many messages in one call, but only the exact
  layout `market.messages.encode` writes for a list of trades: no whitespace, fields in
  declaration order, `exchange` and `symbol` equal to the message subject's, a positive
  integer `ts`, non-negative numbers for `price` and `size`, a known `side`, and a canonical
  decimal `trade_id` (see `market.trade_batch`). Numbers are converted with the exact fast
  path of decimal to binary conversion (Clinger's): a mantissa below 2**53 times or divided by
  an exact power of ten up to 1e22 is one correctly rounded IEEE operation, so the result
  equals msgspec's and Python's `float()`. Anything else (longer mantissas, other layouts,
  string ids) is not guessed at.
- Any message the fast path does not take, or in which any trade fails validation, goes
  through `market.messages.decode_trades` (msgspec, with per-element errors), so rejections
  carry the same reasons as before.

This is hand-written because no library decodes JSON into columns exactly and faster than
msgspec decodes into Structs (pyarrow's and polars' JSON readers were slower here). The margin,
measured by `bench/flow_throughput.py` against `bench/msgspec_decoder.py` (msgspec into
`Trade`s, validated, into columns: the same trades to the bit) on the same 1M trades: this
parser decodes 2.0-3.6M trades/s, msgspec alone 0.24-0.28M (about 13 times slower, most of it
the per-trade Python of validation and column building); the whole flow ran at 428k trades/s
with this parser and 225k with msgspec alone on a loaded machine. msgspec alone caps the flow
below 0.3M trades/s, a third of its 1M target, so the parser stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from market.arrays import Bytes, Floats, Int8s, Ints
from market.messages import (
    EXCHANGE_PATTERN,
    MAX_QUANTITY,
    SYMBOL_PATTERN,
    Rejected,
    Trade,
    decode_trades,
    encode,
)
from market.trade_batch import TradeBatch

#: Bytes of the shortest trade the fast path can read, to size its output.
_MIN_TRADE_BYTES = 90

_POW10 = np.array([10.0**k for k in range(23)], np.float64)
_MAX_EXACT = 1 << 53
# Significant digits a mantissa may have: 18 always fit in int64 (19 may overflow it), and
# any mantissa above 2**53 (16 digits) leaves the fast path anyway.
_MAX_DIGITS = 18

# Byte constants for the parser.
_QUOTE, _COMMA, _LBRACE, _RBRACE, _LBRACKET, _RBRACKET = 34, 44, 123, 125, 91, 93
_ZERO, _NINE, _DOT, _MINUS, _PLUS, _E, _UPPER_E = 48, 57, 46, 45, 43, 101, 69

_PRICE = np.frombuffer(b',"price":', np.uint8)
_SIZE = np.frombuffer(b',"size":', np.uint8)
_SIDE = np.frombuffer(b',"side":"', np.uint8)
_TRADE_ID = np.frombuffer(b'","trade_id":"', np.uint8)
_BUY = np.frombuffer(b"buy", np.uint8)
_SELL = np.frombuffer(b"sell", np.uint8)
_UNKNOWN = np.frombuffer(b"unknown", np.uint8)


@njit(cache=True, nogil=True)
def _expect(buf: Bytes, p: int, end: int, lit: Bytes) -> int:
    n = lit.shape[0]
    if p + n > end:
        return -1
    for j in range(n):
        if buf[p + j] != lit[j]:
            return -1
    return p + n


@njit(cache=True, nogil=True)
def _number(buf: Bytes, p: int, end: int, out: Floats, row: int) -> int:
    """Parse a non-negative JSON number at p into out[row]; -1 if not exactly representable
    by the fast path (or not a valid JSON number)."""
    mantissa = 0
    digits = 0
    frac = 0
    if p >= end:
        return -1
    c = buf[p]
    if c == _ZERO:
        p += 1
    elif _ZERO < c <= _NINE:
        while p < end and _ZERO <= buf[p] <= _NINE:
            if digits >= _MAX_DIGITS:
                return -1
            mantissa = mantissa * 10 + (buf[p] - _ZERO)
            if mantissa:
                digits += 1
            p += 1
    else:
        return -1
    if p < end and buf[p] == _DOT:
        p += 1
        start = p
        while p < end and _ZERO <= buf[p] <= _NINE:
            if digits >= _MAX_DIGITS:
                return -1
            mantissa = mantissa * 10 + (buf[p] - _ZERO)
            if mantissa:
                digits += 1
            frac += 1
            p += 1
        if p == start:
            return -1
    exponent = 0
    if p < end and (buf[p] == _E or buf[p] == _UPPER_E):
        p += 1
        negative = False
        if p < end and (buf[p] == _MINUS or buf[p] == _PLUS):
            negative = buf[p] == _MINUS
            p += 1
        start = p
        while p < end and _ZERO <= buf[p] <= _NINE:
            if p - start >= 4:
                return -1
            exponent = exponent * 10 + (buf[p] - _ZERO)
            p += 1
        if p == start:
            return -1
        if negative:
            exponent = -exponent
    scale = exponent - frac
    if mantissa == 0:
        out[row] = 0.0
    elif mantissa <= _MAX_EXACT and 0 <= scale <= 22:
        out[row] = float(mantissa) * _POW10[scale]
    elif mantissa <= _MAX_EXACT and -22 <= scale < 0:
        out[row] = float(mantissa) / _POW10[-scale]
    else:
        return -1
    return p


@njit(cache=True, nogil=True)
def _trades(
    buf: Bytes, p: int, end: int, prefix: Bytes, row: int,
    ts: Ints, price: Floats, size: Floats, side: Int8s, ids: Ints,
) -> int:
    """Parse one message (an array of trades, or one trade) from p to end into rows from
    `row`; return the next free row, or -1 when the fast path does not apply."""
    if p >= end:
        return -1
    in_array = buf[p] == _LBRACKET
    if in_array:
        p += 1
        if p < end and buf[p] == _RBRACKET:
            return row if p + 1 == end else -1
    while True:
        if row >= ts.shape[0]:
            return -1
        p = _expect(buf, p, end, prefix)
        if p < 0:
            return -1
        # ts: a positive integer of at most 19 digits that fits int64.
        if p >= end or not (_ZERO < buf[p] <= _NINE):
            return -1
        value = 0
        n = 0
        while p < end and _ZERO <= buf[p] <= _NINE:
            if n == 19:
                return -1
            digit = buf[p] - _ZERO
            if value > (9223372036854775807 - digit) // 10:
                return -1
            value = value * 10 + digit
            n += 1
            p += 1
        ts[row] = value
        p = _expect(buf, p, end, _PRICE)
        if p < 0:
            return -1
        p = _number(buf, p, end, price, row)
        if p < 0:
            return -1
        p = _expect(buf, p, end, _SIZE)
        if p < 0:
            return -1
        p = _number(buf, p, end, size, row)
        if p < 0:
            return -1
        p = _expect(buf, p, end, _SIDE)
        if p < 0:
            return -1
        q = _expect(buf, p, end, _BUY)
        code = 0
        if q < 0:
            q = _expect(buf, p, end, _SELL)
            code = 1
        if q < 0:
            q = _expect(buf, p, end, _UNKNOWN)
            code = 2
        if q < 0:
            return -1
        side[row] = code
        p = _expect(buf, q, end, _TRADE_ID)
        if p < 0:
            return -1
        # trade_id: canonical decimal, at most 18 digits.
        start = p
        value = 0
        while p < end and _ZERO <= buf[p] <= _NINE:
            if p - start == 18:
                return -1
            value = value * 10 + (buf[p] - _ZERO)
            p += 1
        if p == start or (buf[start] == _ZERO and p - start > 1):
            return -1
        ids[row] = value
        if p + 1 >= end or buf[p] != _QUOTE or buf[p + 1] != _RBRACE:
            return -1
        p += 2
        row += 1
        if not in_array:
            return row if p == end else -1
        if p < end and buf[p] == _COMMA:
            p += 1
            continue
        if p < end and buf[p] == _RBRACKET:
            return row if p + 1 == end else -1
        return -1


@njit(cache=True, nogil=True)
def _decode(
    buf: Bytes, bounds: Ints, prefixes: Bytes, prefix_bounds: Ints,
    prefix_of: Ints, counts: Ints,
    ts: Ints, price: Floats, size: Floats, side: Int8s, ids: Ints,
) -> int:
    """Decode every message; counts[m] is its number of trades, or -1 for the slow path."""
    row = 0
    for m in range(counts.shape[0]):
        counts[m] = -1
        j = prefix_of[m]
        if j < 0:
            continue
        prefix = prefixes[prefix_bounds[j]:prefix_bounds[j + 1]]
        end_row = _trades(
            buf, bounds[m], bounds[m + 1], prefix, row, ts, price, size, side, ids
        )
        if end_row >= 0:
            counts[m] = end_row - row
            row = end_row
    return row


@dataclass(frozen=True, slots=True)
class DecodedMessages:
    """The trades of several messages, in order, and what each message had rejected."""

    batch: TradeBatch
    rejected: list[tuple[int, Rejected]]  # (message index, rejection)
    trades_per_message: Ints  # int64: accepted trades of each message
    fast_messages: int  # how many messages the compiled path read


class TradeDecoder:
    """Decodes trade messages into one `TradeBatch`, keeping a small cache of subject prefixes.

    `decode` takes (key, payload) pairs, where key is the (exchange, symbol) the message's
    subject names, or None for a subject that names none (its trades are rejected with reason
    `bad_subject`). A trade for another market than its subject's is rejected with reason
    `subject_mismatch`; other reasons are those of `market.messages.decode_trades`.
    """

    def __init__(self, *, max_future_ns: int) -> None:
        self.max_future_ns = max_future_ns
        self._prefix_index: dict[tuple[str, str], int] = {}
        self._markets: list[tuple[str, str]] = []
        self._prefixes = bytearray()
        self._prefix_bounds = [0]

    def _prefix(self, key: tuple[str, str] | None) -> int:
        if key is None:
            return -1
        index = self._prefix_index.get(key)
        if index is None:
            exchange, symbol = key
            index = -1
            if EXCHANGE_PATTERN.match(exchange) and SYMBOL_PATTERN.match(symbol):
                index = len(self._markets)
                self._markets.append(key)
                self._prefixes += f'{{"exchange":"{exchange}","symbol":"{symbol}","ts":'.encode()
                self._prefix_bounds.append(len(self._prefixes))
            self._prefix_index[key] = index
        return index

    def decode(
        self, messages: Sequence[tuple[tuple[str, str] | None, bytes]], *, now_ns: int
    ) -> DecodedMessages:
        """The trades of `messages` in order, and each message's rejected elements."""
        n_messages = len(messages)
        payloads = [data for _, data in messages]
        bounds = np.zeros(n_messages + 1, np.int64)
        np.cumsum(np.fromiter(map(len, payloads), np.int64, n_messages), out=bounds[1:])
        market_of = np.array([self._prefix(key) for key, _ in messages], np.int64)
        capacity = int(bounds[-1]) // _MIN_TRADE_BYTES + n_messages + 1
        ts: Ints = np.empty(capacity, np.int64)
        price: Floats = np.empty(capacity, np.float64)
        size: Floats = np.empty(capacity, np.float64)
        side: Int8s = np.empty(capacity, np.int8)
        ids: Ints = np.empty(capacity, np.int64)
        counts = np.empty(n_messages, np.int64)
        rows = _decode(
            np.frombuffer(b"".join(payloads), np.uint8), bounds,
            np.frombuffer(bytes(self._prefixes), np.uint8),
            np.array(self._prefix_bounds, np.int64), market_of, counts,
            ts, price, size, side, ids,
        )
        ts, price, size, side, ids = ts[:rows], price[:rows], size[:rows], side[:rows], ids[:rows]
        # Checks the parser leaves out: a time too far ahead, a zero price, a huge quantity.
        # A message holding such a trade goes through msgspec, which names the reason.
        bad = np.flatnonzero(
            (ts > now_ns + self.max_future_ns) | (price <= 0.0)
            | (price >= MAX_QUANTITY) | (size >= MAX_QUANTITY)
        )
        if len(bad):
            starts = np.zeros(n_messages, np.int64)
            np.cumsum(np.maximum(counts, 0)[:-1], out=starts[1:])
            for m in np.unique(np.searchsorted(starts, bad, side="right") - 1).tolist():
                counts[m] = -counts[m] - 2  # decoded, but to be redone on the slow path
        if not (counts < 0).any():
            batch = TradeBatch(
                list(self._markets), np.repeat(market_of.astype(np.int32), counts),
                ts, price, size, side, ids,
            )
            return DecodedMessages(batch, [], counts, n_messages)
        parts: list[TradeBatch] = []
        rejected: list[tuple[int, Rejected]] = []
        accepted = np.zeros(n_messages, np.int64)
        row = 0
        for m, count in enumerate(counts.tolist()):
            if count >= 0:
                end = row + count
                parts.append(TradeBatch(
                    [self._markets[int(market_of[m])]], np.zeros(count, np.int32),
                    ts[row:end], price[row:end], size[row:end], side[row:end], ids[row:end],
                ))
                row = end
                accepted[m] = count
                continue
            if count < -1:
                row += -count - 2  # rows the fast path read, redone here
            key, data = messages[m]
            trades, problems = decode_trades(
                data, now_ns=now_ns, max_future_ns=self.max_future_ns
            )
            trades = _on_subject(key, trades, problems)
            rejected.extend((m, problem) for problem in problems)
            accepted[m] = len(trades)
            if trades:
                parts.append(TradeBatch.from_trades(trades))
        fast = int(np.count_nonzero(counts >= 0))
        return DecodedMessages(TradeBatch.concat(parts), rejected, accepted, fast)


def _on_subject(
    key: tuple[str, str] | None, trades: list[Trade], rejected: list[Rejected]
) -> list[Trade]:
    """The trades for the subject's market; the others are added to `rejected`."""
    if key is None:
        detail = "subject must be trades.<exchange>.<symbol>"
        rejected.extend(Rejected.of("bad_subject", detail, encode(t)) for t in trades)
        return []
    matching = [t for t in trades if (t.exchange, t.symbol) == key]
    if len(matching) != len(trades):
        detail = f"trade is not for {key[0]}:{key[1]}, the subject's symbol"
        rejected.extend(
            Rejected.of("subject_mismatch", detail, encode(t))
            for t in trades
            if (t.exchange, t.symbol) != key
        )
    return matching
