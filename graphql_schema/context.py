"""What resolvers may use: small Protocols, so the schema does not know the concrete adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from market.messages import Candle
from strategies.service import BacktestService


class MarketSummary(Protocol):
    """A market with stored candles (`db.candle_store.SymbolSummary`)."""

    @property
    def exchange(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def first_ns(self) -> int: ...
    @property
    def last_ns(self) -> int: ...
    @property
    def last_price(self) -> float: ...


class CandleReader(Protocol):
    """The store reads resolvers use (of `db.candle_store.CandleStore` and
    `db.indicator_store.IndicatorStore`, which say what each one returns)."""

    def candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        from_start: bool = False,
    ) -> list[Candle]: ...

    def resample(
        self,
        exchange: str,
        symbol: str,
        source_timeframe: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        from_start: bool = False,
    ) -> list[Candle]: ...

    def candles_frame(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        limit: int | None = None,
        from_start: bool = False,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame: ...

    def latest_candles(self, timeframe: str, exchange: str | None = None) -> list[Candle]: ...

    def symbols(self) -> list[tuple[str, str]]: ...

    def symbol_summaries(self) -> Sequence[MarketSummary]: ...

    def indicators(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        names: Sequence[str] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> pl.DataFrame: ...


class CandleFeed(Protocol):
    def subscribe(
        self, exchange: str, symbol: str, timeframe: str
    ) -> AbstractAsyncContextManager[AsyncIterator[Candle]]:
        """Live updates of one candle series, forming and closed, corrections included.

        Once entered, every update published from then on is delivered (so a caller may read
        the store after entering and miss nothing); leaving releases the subscription. The
        iterator raises `graphql_schema.errors.SlowConsumer` if its reader falls too far behind.
        """
        ...


class Access(Protocol):
    def authorize(self, operation: str) -> None:
        """Raise `Unauthenticated` or `RateLimited` (graphql_schema.errors) unless this caller
        may run an operation of this type: `query`, `mutation` or `subscription`."""
        ...


class OpenAccess:
    """Everyone may do everything: the access of a schema used without a server."""

    def authorize(self, operation: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Limits:
    timeframes: tuple[str, ...]
    max_candles: int = 10_000


@dataclass(slots=True)
class Context:
    """Built per request (or websocket connection) by the server.

    Not frozen: Strawberry stores a websocket's `connection_init` payload in
    `connection_params`. Fields with defaults stay last.
    """

    store: CandleReader
    feed: CandleFeed
    limits: Limits
    access: Access = field(default_factory=OpenAccess)
    connection_params: dict[str, object] | None = None
    # Backtests and sweeps (`strategies.service`); None where the server offers none.
    backtests: BacktestService | None = None
