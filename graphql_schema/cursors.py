"""Page cursors: opaque strings that stand for one candle's bucket start.

A cursor is the URL-safe base64 of `candle:<ts>` (`ts` in integer nanoseconds since the epoch,
UTC). Clients treat it as opaque and get it from `pageInfo`; paging is keyset paging on `ts`, so
a cursor stays valid across inserts and corrections, and works for every timeframe.
"""

from __future__ import annotations

import base64
import binascii

from graphql_schema.errors import BadArgument

_PREFIX = "candle:"


def encode_cursor(ts_ns: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{ts_ns}".encode()).decode()


def decode_cursor(argument: str, cursor: str) -> int:
    """The bucket start a cursor stands for; `BadArgument` naming `argument` when malformed."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    digits = text.removeprefix(_PREFIX)
    if len(cursor) > 64 or not text.startswith(_PREFIX) or not digits.lstrip("-").isdigit():
        raise BadArgument(argument, f"expected a cursor from pageInfo, got {cursor[:64]!r}")
    return int(digits)
