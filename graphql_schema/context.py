"""What resolvers may use: small Protocols, so the schema does not know the concrete adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from market.messages import Candle


class CandleReader(Protocol):
    def candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> list[Candle]: ...

    def symbols(self) -> list[tuple[str, str]]: ...


class CandleFeed(Protocol):
    def candles(self, exchange: str, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        """Live updates of one candle series, forming and closed, until the caller stops."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    timeframes: tuple[str, ...]
    max_candles: int = 10_000


@dataclass(frozen=True, slots=True)
class Context:
    """Built per request by the server."""

    store: CandleReader
    feed: CandleFeed
    limits: Limits
