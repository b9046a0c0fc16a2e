"""The simulated instrument a backtest trades: a spot `CurrencyPair` sized to fit the candles.

Bars must carry exactly the instrument's price and size precision or the engine refuses them,
so the precisions are derived from the data: the fewest decimals that represent every price
(and every volume and the fixed order quantity) exactly, capped.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Currency, Price, Quantity

from market.arrays import Floats
from strategies.spec import BacktestSpec

#: The simulated venue every backtest trades on; bar types read `BTC-USDT.SIM-1-MINUTE-...`.
VENUE = Venue("SIM")
#: Beyond 9 decimals a price is noise from float arithmetic, not a tick size.
PRICE_PRECISION_CAP = 9
#: Sizes are counted in satoshi-like units at most.
SIZE_PRECISION_CAP = 8
# A value counts as having d decimals when value * 10^d is within this of an integer: it
# forgives the last-bit error of floats such as 0.1 + 0.2 without accepting real digits.
_INTEGER_TOLERANCE = 1e-6


def decimals_needed(values: Floats, cap: int) -> int:
    """The fewest decimals (at most `cap`) that represent every value, e.g. 2 for [1.5, 2.25]."""
    remaining = np.asarray(values, dtype=np.float64)
    for decimals in range(cap):
        scaled = remaining * 10.0**decimals
        off_grid = np.abs(scaled - np.rint(scaled)) > _INTEGER_TOLERANCE
        # Values that fit at d decimals fit at every d' > d: only the others are checked again.
        remaining = remaining[off_grid]
        if remaining.size == 0:
            return decimals
    return cap


def build_instrument(
    spec: BacktestSpec, *, price_precision: int, size_precision: int
) -> CurrencyPair:
    """A spot pair BASE-QUOTE on the `SIM` venue with the spec's maker and taker fees."""
    base = Currency.from_str(spec.base)
    quote = Currency.from_str(spec.quote)
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(spec.symbol), VENUE),
        raw_symbol=Symbol(spec.symbol),
        base_currency=base,
        quote_currency=quote,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price(10.0**-price_precision, price_precision),
        size_increment=Quantity(10.0**-size_precision, size_precision),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(repr(spec.maker_fee)),
        taker_fee=Decimal(repr(spec.taker_fee)),
    )


def size_precision_cap(spec: BacktestSpec) -> int:
    """Sizes finer than the base currency's own precision could not be held in the account."""
    precision: int = Currency.from_str(spec.base).precision
    return min(SIZE_PRECISION_CAP, precision)
