"""Validation of user arguments, shared by queries and subscriptions."""

from __future__ import annotations

from graphql_schema.context import Limits
from graphql_schema.errors import BadArgument
from market.messages import EXCHANGE_PATTERN, SYMBOL_PATTERN


def check_market(exchange: str, symbol: str) -> None:
    # Names become NATS subject tokens, so wildcards and dots must never get through.
    if not EXCHANGE_PATTERN.match(exchange):
        raise BadArgument("exchange", f"expected lower-case letters, digits or _, got {exchange!r}")
    if not SYMBOL_PATTERN.match(symbol):
        raise BadArgument("symbol", f"expected BASE-QUOTE in upper case, got {symbol!r}")


def check_timeframe(timeframe: str, limits: Limits) -> None:
    if timeframe not in limits.timeframes:
        valid = ", ".join(limits.timeframes)
        raise BadArgument("timeframe", f"expected one of {valid}, got {timeframe!r}")


def check_limit(limit: int, limits: Limits) -> None:
    if not 1 <= limit <= limits.max_candles:
        raise BadArgument("limit", f"expected 1 to {limits.max_candles}, got {limit}")
