"""Wire messages: `Trade`, `Candle` and `DeadLetter`, JSON-encoded through msgspec Structs.

A message on `trades.<exchange>.<symbol>` holds one trade object or a JSON array of them.
Decoding is two-step: the schema (types and required fields) is checked by msgspec, and the
values (finite positive price, non-negative size, canonical names, sane time) by
`trade_problem`. A malformed element of a batch is rejected alone; its neighbours go on.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

import msgspec

Side = Literal["buy", "sell", "unknown"]

EXCHANGE_PATTERN = re.compile(r"^[a-z0-9_]{1,32}$")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")

#: Prices and sizes must be below this (and finite), so that no sum of price times size in a
#: candle can overflow to infinity, which JSON cannot carry.
MAX_QUANTITY = 1e100
#: Longest trade id accepted; exchanges use integers or UUIDs, far shorter.
MAX_TRADE_ID_CHARS = 128
#: How far ahead of the receiver's clock a trade's timestamp may be before it is rejected.
DEFAULT_MAX_FUTURE_NS = 60 * 1_000_000_000


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One exchange trade. `ts` is exchange time in integer nanoseconds since the epoch, UTC."""

    exchange: str
    symbol: str
    ts: int
    price: float
    size: float
    side: Side
    trade_id: str


class Candle(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """OHLCV of one bucket. `ts` is the bucket start; `closed` is False while it still forms.

    `trades` (the number of trades) and `vwap` (volume-weighted average price) are None when
    the candle's source does not carry them: an exchange's OHLCV history has neither. Candles
    built from trades always have both.

    `indicators` (storage name to value) rides along on a closed candle once it is final and
    the flow has computed its indicators; it is left out of the JSON when there are none.
    """

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int | None
    vwap: float | None
    closed: bool
    indicators: dict[str, float] | None = None


class Rejected(msgspec.Struct, frozen=True):
    """A trade or message element that failed validation, before it becomes a `DeadLetter`.

    Bounded whatever the input: `detail` holds at most `MAX_DETAIL_CHARS` characters and
    `payload` the first `MAX_EXCERPT_BYTES` bytes of the element (as text, invalid UTF-8
    replaced); `payload_bytes` and `payload_sha256` describe the whole element. Build it with
    `Rejected.of`.
    """

    reason: str
    detail: str
    payload: str
    payload_bytes: int
    payload_sha256: str

    @classmethod
    def of(cls, reason: str, detail: str, element: bytes | str) -> Rejected:
        raw = element.encode("utf-8", "surrogatepass") if isinstance(element, str) else element
        return cls(
            reason,
            bounded(detail, MAX_DETAIL_CHARS),
            raw[:MAX_EXCERPT_BYTES].decode("utf-8", "replace"),
            len(raw),
            hashlib.sha256(raw).hexdigest(),
        )


class DeadLetter(msgspec.Struct, frozen=True):
    """Rejected input on `deadletter.trades`: why, where it came from and what it was.

    Always small enough to publish: `detail` at most `MAX_DETAIL_CHARS` characters, `subject`
    at most `MAX_SUBJECT_CHARS`, and `payload` an excerpt of at most `MAX_EXCERPT_BYTES` bytes
    of the rejected element, whose full length and SHA-256 are `payload_bytes` and
    `payload_sha256`. Encoded, a dead letter stays under `MAX_DEAD_LETTER_BYTES`.
    """

    reason: str
    detail: str
    subject: str
    payload: str
    payload_bytes: int
    payload_sha256: str

    @classmethod
    def of(cls, rejected: Rejected, subject: str) -> DeadLetter:
        return cls(
            rejected.reason, rejected.detail, bounded(subject, MAX_SUBJECT_CHARS),
            rejected.payload, rejected.payload_bytes, rejected.payload_sha256,
        )


#: Bounds of a dead letter's text fields (see `DeadLetter`).
MAX_DETAIL_CHARS = 512
MAX_SUBJECT_CHARS = 256
MAX_EXCERPT_BYTES = 1024
#: JSON escapes at most six bytes per character (`\u001f`), so a dead letter encodes to less
#: than this: far below NATS's smallest usual max_payload (1 MB).
MAX_DEAD_LETTER_BYTES = 6 * (MAX_DETAIL_CHARS + MAX_SUBJECT_CHARS + MAX_EXCERPT_BYTES) + 512


def bounded(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters with the length of the rest noted."""
    if len(text) <= limit:
        return text
    note = f"... ({len(text)} characters)"
    return text[: max(limit - len(note), 0)] + note


_batch_decoder = msgspec.json.Decoder(Trade | list[Trade])
_trade_decoder = msgspec.json.Decoder(Trade)
_trade_encoder = msgspec.json.Encoder()
_candle_decoder = msgspec.json.Decoder(Candle)


def encode(value: object) -> bytes:
    """Encode a message, or a list of them, as JSON."""
    return _trade_encoder.encode(value)


def decode_candle(data: bytes) -> Candle:
    """Decode one candle message, raising `msgspec.ValidationError` on a bad one."""
    return _candle_decoder.decode(data)


def trade_problem(trade: Trade, *, now_ns: int, max_future_ns: int) -> tuple[str, str] | None:
    """Return `(reason, detail)` when a schema-valid trade holds impossible values, else None."""
    if not 0 < trade.price < MAX_QUANTITY:
        return "bad_price", f"price must be > 0 and < {MAX_QUANTITY:g}, got {trade.price!r}"
    if not 0 <= trade.size < MAX_QUANTITY:
        return "bad_size", f"size must be >= 0 and < {MAX_QUANTITY:g}, got {trade.size!r}"
    if trade.ts <= 0:
        return "bad_timestamp", f"ts must be positive nanoseconds since the epoch, got {trade.ts}"
    if trade.ts > now_ns + max_future_ns:
        return "future_timestamp", f"ts {trade.ts} is more than {max_future_ns} ns ahead of now"
    if not EXCHANGE_PATTERN.match(trade.exchange):
        return "bad_exchange", f"exchange must be lower case [a-z0-9_], got {trade.exchange!r}"
    if not SYMBOL_PATTERN.match(trade.symbol):
        return "bad_symbol", f"symbol must be canonical BASE-QUOTE, got {trade.symbol!r}"
    if not trade.trade_id:
        return "missing_field", "trade_id must not be empty"
    if len(trade.trade_id) > MAX_TRADE_ID_CHARS:
        return "bad_trade_id", (
            f"trade_id must be at most {MAX_TRADE_ID_CHARS} characters,"
            f" got {len(trade.trade_id)}"
        )
    return None


def _schema_reason(error: msgspec.ValidationError) -> str:
    return "missing_field" if "missing required field" in str(error) else "bad_field"


def decode_trades(
    data: bytes, *, now_ns: int, max_future_ns: int = DEFAULT_MAX_FUTURE_NS
) -> tuple[list[Trade], list[Rejected]]:
    """Decode a trades message into valid trades and rejected elements, never raising.

    The whole message is decoded in one msgspec call when it is well formed (the fast path);
    otherwise each element is decoded on its own so one bad element loses nothing else.
    Nesting deeper than msgspec's limit (a `RecursionError`) is undecodable like any other
    malformed JSON.
    """
    try:
        decoded = _batch_decoder.decode(data)
        candidates = decoded if isinstance(decoded, list) else [decoded]
        rejected: list[Rejected] = []
    except msgspec.ValidationError:
        candidates, rejected = _decode_elements(data)
    except (msgspec.DecodeError, RecursionError) as error:
        return [], [Rejected.of("undecodable", _decode_error(error), data)]

    trades: list[Trade] = []
    for trade in candidates:
        problem = trade_problem(trade, now_ns=now_ns, max_future_ns=max_future_ns)
        if problem is None:
            trades.append(trade)
        else:
            rejected.append(Rejected.of(problem[0], problem[1], encode(trade)))
    return trades, rejected


def _decode_elements(data: bytes) -> tuple[list[Trade], list[Rejected]]:
    # Split into raw elements without parsing their values, then decode each on its own.
    try:
        elements = msgspec.json.decode(data, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        elements = [msgspec.Raw(data)]
    except (msgspec.DecodeError, RecursionError) as error:
        return [], [Rejected.of("undecodable", _decode_error(error), data)]
    trades: list[Trade] = []
    rejected: list[Rejected] = []
    for element in elements:
        try:
            trades.append(_trade_decoder.decode(element))
        except msgspec.ValidationError as error:
            rejected.append(Rejected.of(_schema_reason(error), str(error), bytes(element)))
        except (msgspec.DecodeError, RecursionError) as error:
            rejected.append(Rejected.of("undecodable", _decode_error(error), bytes(element)))
    return trades, rejected


def _decode_error(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "JSON nested too deeply"
    return str(error)
