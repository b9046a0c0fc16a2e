"""Validation of user arguments, shared by queries and subscriptions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from graphql_schema.context import CandleReader, Limits
from graphql_schema.errors import BadArgument, NotFound
from graphql_schema.reads import read_store
from graphql_schema.types import to_ns
from market.messages import EXCHANGE_PATTERN, SYMBOL_PATTERN
from market.timeframes import Timeframe, TimeframeError

#: Stored indicator names: `sma_20`, `macd_12_26_9.hist`, `bbands_20_2.5.upper`.
INDICATOR_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
MAX_INDICATOR_NAMES = 50


def check_market(exchange: str, symbol: str) -> None:
    # Names become NATS subject tokens, so wildcards and dots must never get through.
    check_exchange(exchange)
    if not SYMBOL_PATTERN.match(symbol):
        raise BadArgument("symbol", f"expected BASE-QUOTE in upper case, got {symbol!r}")


def check_exchange(exchange: str) -> None:
    if not EXCHANGE_PATTERN.match(exchange):
        raise BadArgument("exchange", f"expected lower-case letters, digits or _, got {exchange!r}")


def check_timeframe(timeframe: str, limits: Limits) -> None:
    if timeframe not in limits.timeframes:
        valid = ", ".join(limits.timeframes)
        raise BadArgument("timeframe", f"expected one of {valid}, got {timeframe!r}")


def source_timeframe(timeframe: str, limits: Limits) -> str | None:
    """None for a stored timeframe; else the widest stored one that divides it, to resample.

    `BadArgument` naming `timeframe`, listing the stored ones, when there is none.
    """
    if timeframe in limits.timeframes:
        return None
    stored = ", ".join(limits.timeframes)
    try:
        wanted = Timeframe.parse(timeframe)
    except TimeframeError:
        raise BadArgument(
            "timeframe",
            f"expected a count and a unit such as 5m or 2h, built from a stored timeframe "
            f"({stored}), got {timeframe!r}",
        ) from None
    sources = [tf for tf in map(Timeframe.parse, limits.timeframes) if tf.divides(wanted)]
    if not sources:
        raise BadArgument(
            "timeframe",
            f"{timeframe} is not a whole number of any stored timeframe ({stored})",
        )
    return max(sources).name


def check_limit(limit: int, limits: Limits) -> None:
    if not 1 <= limit <= limits.max_candles:
        raise BadArgument("limit", f"expected 1 to {limits.max_candles}, got {limit}")


def check_range(start: datetime | None, end: datetime | None) -> tuple[int | None, int | None]:
    """`start` and `end` as nanoseconds; `BadArgument` naming `end` unless start < end."""
    start_ns = to_ns(start) if start is not None else None
    end_ns = to_ns(end) if end is not None else None
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise BadArgument("end", "must be after start")
    return start_ns, end_ns


def check_indicator_names(names: Sequence[str]) -> None:
    if not 1 <= len(names) <= MAX_INDICATOR_NAMES:
        raise BadArgument("names", f"expected 1 to {MAX_INDICATOR_NAMES} names, got {len(names)}")
    for name in names:
        if not INDICATOR_NAME_PATTERN.match(name):
            raise BadArgument(
                "names", f"expected stored indicator names such as sma_20, got {name[:80]!r}"
            )
    if len(set(names)) < len(names):
        raise BadArgument("names", "a name is repeated")


async def check_known_market(store: CandleReader, exchange: str, symbol: str) -> None:
    """`NotFound` unless the market has stored candles (called when a read comes back empty)."""
    if (exchange, symbol) not in await read_store(store, store.symbols, rows=0):
        raise NotFound(f"no market {exchange}:{symbol}; the symbols query lists them")
