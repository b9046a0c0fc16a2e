"""Wire messages: `Trade`, `Candle` and `DeadLetter`, JSON-encoded through msgspec Structs.

A message on `trades.<exchange>.<symbol>` holds one trade object or a JSON array of them.
Decoding is two-step: the schema (types and required fields) is checked by msgspec, and the
values (finite positive price, non-negative size, canonical names, sane time) by
`trade_problem`. A malformed element of a batch is rejected alone; its neighbours go on.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import msgspec

Side = Literal["buy", "sell", "unknown"]

EXCHANGE_PATTERN = re.compile(r"^[a-z0-9_]{1,32}$")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")

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


class DeadLetter(msgspec.Struct, frozen=True):
    """Rejected input on `deadletter.trades`: why, where it came from and what it was."""

    reason: str
    detail: str
    subject: str
    payload: str


class Rejected(msgspec.Struct, frozen=True):
    """A trade or message element that failed validation, before it becomes a `DeadLetter`."""

    reason: str
    detail: str
    payload: str


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
    if not (math.isfinite(trade.price) and trade.price > 0):
        return "bad_price", f"price must be finite and > 0, got {trade.price!r}"
    if not (math.isfinite(trade.size) and trade.size >= 0):
        return "bad_size", f"size must be finite and >= 0, got {trade.size!r}"
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
    return None


def _schema_reason(error: msgspec.ValidationError) -> str:
    return "missing_field" if "missing required field" in str(error) else "bad_field"


def decode_trades(
    data: bytes, *, now_ns: int, max_future_ns: int = DEFAULT_MAX_FUTURE_NS
) -> tuple[list[Trade], list[Rejected]]:
    """Decode a trades message into valid trades and rejected elements, never raising.

    The whole message is decoded in one msgspec call when it is well formed (the fast path);
    otherwise each element is decoded on its own so one bad element loses nothing else.
    """
    try:
        decoded = _batch_decoder.decode(data)
        candidates = decoded if isinstance(decoded, list) else [decoded]
        rejected: list[Rejected] = []
    except msgspec.DecodeError as error:
        if not isinstance(error, msgspec.ValidationError):
            text = data[:1000].decode("utf-8", "replace")
            return [], [Rejected("undecodable", str(error), text)]
        candidates, rejected = _decode_elements(data)

    trades: list[Trade] = []
    for trade in candidates:
        problem = trade_problem(trade, now_ns=now_ns, max_future_ns=max_future_ns)
        if problem is None:
            trades.append(trade)
        else:
            rejected.append(Rejected(problem[0], problem[1], encode(trade).decode()))
    return trades, rejected


def _decode_elements(data: bytes) -> tuple[list[Trade], list[Rejected]]:
    # Split into raw elements without parsing their values, then decode each on its own.
    try:
        elements = msgspec.json.decode(data, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        elements = [msgspec.Raw(data)]
    except msgspec.DecodeError as error:
        return [], [Rejected("undecodable", str(error), data[:1000].decode("utf-8", "replace"))]
    trades: list[Trade] = []
    rejected: list[Rejected] = []
    for element in elements:
        try:
            trades.append(_trade_decoder.decode(element))
        except msgspec.DecodeError as error:
            reason = (
                _schema_reason(error) if isinstance(error, msgspec.ValidationError)
                else "undecodable"
            )
            payload = bytes(element)[:1000].decode("utf-8", "replace")
            rejected.append(Rejected(reason, str(error), payload))
    return trades, rejected
