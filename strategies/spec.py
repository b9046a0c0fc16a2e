"""What to backtest: the market, the strategy and its params, the account and the order sizing.

A `BacktestSpec` is a frozen msgspec Struct, so a job queue or a database stores it as JSON and
a worker decodes it back (`msgspec.json.decode(data, type=BacktestSpec)`), with the same checks
as when it is built in code. Fees are fractions of notional (0.001 = 0.1 % = 10 bp).
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from market.messages import EXCHANGE_PATTERN, SYMBOL_PATTERN
from market.timeframes import Timeframe, TimeframeError
from strategies.errors import SpecError

AccountKind = Literal["CASH", "MARGIN"]


class FixedQuantity(msgspec.Struct, frozen=True, tag="fixed"):
    """Every entry buys this quantity of the base currency (e.g. 0.5 BTC)."""

    quantity: float


class EquityFraction(msgspec.Struct, frozen=True, tag="fraction"):
    """Every entry commits this fraction (0, 1] of the account's equity, taker fee included."""

    fraction: float = 1.0


Sizing = FixedQuantity | EquityFraction


class BacktestSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One backtest. `currency`, when given, must be the symbol's quote currency."""

    exchange: str
    symbol: str
    timeframe: str
    strategy: str
    params: dict[str, int | float | bool] = msgspec.field(default_factory=dict)
    starting_balance: float = 10_000.0
    currency: str | None = None
    maker_fee: float = 0.001
    taker_fee: float = 0.001
    account_type: AccountKind = "CASH"
    leverage: float = 1.0
    sizing: Sizing = EquityFraction()

    def __post_init__(self) -> None:
        if not EXCHANGE_PATTERN.match(self.exchange):
            raise SpecError("exchange", "lower case [a-z0-9_]{1,32}", self.exchange)
        if not SYMBOL_PATTERN.match(self.symbol):
            raise SpecError("symbol", "canonical BASE-QUOTE such as 'BTC-USDT'", self.symbol)
        try:
            Timeframe.parse(self.timeframe)
        except TimeframeError as error:
            expected = "a timeframe such as '1m' or '1h'"
            raise SpecError("timeframe", expected, self.timeframe) from error
        if self.currency is not None and self.currency != self.quote:
            expected = f"the quote currency of {self.symbol} ({self.quote})"
            raise SpecError("currency", expected, self.currency)
        _check_range("starting_balance", self.starting_balance, 1e-8, 1e15)
        _check_range("maker_fee", self.maker_fee, -0.01, 0.1)
        _check_range("taker_fee", self.taker_fee, -0.01, 0.1)
        _check_range("leverage", self.leverage, 1.0, 100.0)
        if self.account_type == "CASH" and self.leverage != 1.0:
            raise SpecError("leverage", "1.0 on a CASH account", self.leverage)
        match self.sizing:
            case FixedQuantity(quantity=quantity):
                _check_range("sizing.quantity", quantity, 1e-8, 1e12)
            case EquityFraction(fraction=fraction):
                if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
                    raise SpecError("sizing.fraction", "a fraction in (0, 1]", fraction)

    @property
    def base(self) -> str:
        """The base currency code: BTC for BTC-USDT."""
        return self.symbol.split("-", 1)[0]

    @property
    def quote(self) -> str:
        """The quote currency code, in which balances, fees and PnL are counted."""
        return self.symbol.split("-", 1)[1]

    @property
    def timeframe_ns(self) -> int:
        """The bar width in nanoseconds."""
        return Timeframe.parse(self.timeframe).ns


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, "a number", value)
    if not (math.isfinite(value) and low <= value <= high):
        raise SpecError(field, f"a number in [{low}, {high}]", value)
