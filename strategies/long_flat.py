"""The long/flat strategy base (its long/short sibling is `strategies.long_short`).

A long/flat strategy is either flat or holds one long position of the instrument; it never
shorts, so it runs on a spot CASH account as well as on a MARGIN one. Subclasses decide when to
enter and exit in `on_bar` and call `enter(bar)` / `exit()`; this base sizes the order, tracks
the position itself (no portfolio queries per bar) and recovers when an order is refused.

Orders are market orders sent from `on_bar`, so they fill at the close of the bar that raised
the signal (the runner stamps bars at their close, so that close is already known).
"""

from __future__ import annotations

import math
from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OrderSide
from nautilus_trader.model.events import (
    OrderDenied,
    OrderRejected,
    PositionClosed,
    PositionOpened,
)
from nautilus_trader.model.identifiers import InstrumentId, PositionId
from nautilus_trader.model.objects import Currency, Quantity
from nautilus_trader.trading.strategy import Strategy

from strategies.errors import SpecError


class LongFlatConfig(StrategyConfig, frozen=True, kw_only=True):
    """What the runner fills in for every strategy: the market and the order sizing.

    Exactly one of `trade_size` (a fixed quantity of the base currency) and `equity_fraction`
    (the share of the account's quote balance committed at each entry, fees included) is set.
    """

    instrument_id: InstrumentId
    bar_type: BarType
    trade_size: Decimal | None = None
    equity_fraction: float | None = None
    # Per-event logging costs time on every fill even when logging is bypassed.
    log_events: bool = False
    log_commands: bool = False
    # The hyphenated order-id format takes about 48 µs per order to build, the plain one 22.
    use_hyphens_in_client_order_ids: bool = False

    def __post_init__(self) -> None:
        if (self.trade_size is None) == (self.equity_fraction is None):
            raise SpecError(
                "sizing",
                "exactly one of trade_size and equity_fraction",
                {"trade_size": self.trade_size, "equity_fraction": self.equity_fraction},
            )


class LongFlatStrategy(Strategy):  # type: ignore[misc]  # nautilus_trader is untyped: Strategy is Any
    """Base for long/flat strategies: sizing, entry, exit and its own position tracking."""

    #: The config class holding this strategy's parameters; the registry reads it.
    config_type: type[LongFlatConfig] = LongFlatConfig

    def __init__(self, config: LongFlatConfig) -> None:
        super().__init__(config)
        self.long = False
        self._quote: Currency | None = None
        self._size_precision = 0
        self._fixed_qty: Quantity | None = None
        self._position_id: PositionId | None = None
        self._size_scale = 1.0
        self._taker_fee = 0.0
        self._was_above: bool | None = None

    def on_start(self) -> None:
        instrument = self.cache.instrument(self.config.instrument_id)
        if instrument is None:
            raise RuntimeError(f"instrument {self.config.instrument_id} is not in the cache")
        self._quote = instrument.quote_currency
        self._size_precision = instrument.size_precision
        self._size_scale = 10.0**instrument.size_precision
        self._taker_fee = float(instrument.taker_fee)
        if self.config.trade_size is not None:
            self._fixed_qty = instrument.make_qty(self.config.trade_size)
        self.register_indicators()
        self.subscribe_bars(self.config.bar_type)

    def register_indicators(self) -> None:
        """Register indicators with `register_indicator_for_bars`; called before subscribing."""

    def follow_cross(self, bar: Bar, above: bool) -> None:
        """Enter when `above` turns true, exit when it turns false; the first bar only primes."""
        was_above = self._was_above
        self._was_above = above
        if was_above is None or above == was_above:
            return
        if above:
            self.enter(bar)
        else:
            self.exit()

    def enter(self, bar: Bar) -> None:
        """Buy at the market unless already long; the fill comes at this bar's close.

        An entry the account cannot pay for (fee included) is skipped: a CASH account would
        otherwise go negative, which the engine treats as a fatal error, not a refusal.
        """
        if self.long:
            return
        quantity = self._entry_quantity(bar)
        if quantity is None:
            return
        # Set before the fill arrives so the next bar sees the intent; a refusal resets it.
        self.long = True
        order = self.order_factory.market(self.config.instrument_id, OrderSide.BUY, quantity)
        self.submit_order(order)

    def exit(self) -> None:
        """Sell the whole long position at the market, if there is one."""
        if not self.long or self._position_id is None:
            return
        position = self.cache.position(self._position_id)
        self.long = False
        if position is not None and position.is_open:
            self.close_position(position)

    def _entry_quantity(self, bar: Bar) -> Quantity | None:
        # Flat at every entry, so the free quote balance is the whole equity. Queried only on
        # entries, never per bar.
        account = self.portfolio.account(self.config.instrument_id.venue)
        balance = account.balance_free(self._quote)
        if balance is None:
            return None
        cash = balance.as_double()
        unit_cost = bar.close.as_double() * (1.0 + self._taker_fee)
        if self._fixed_qty is not None:
            if account.type == AccountType.CASH and self._fixed_qty.as_double() * unit_cost > cash:
                return None
            return self._fixed_qty
        raw = cash * self.config.equity_fraction / unit_cost
        # Rounds down: rounding up could ask for more than the account holds.
        size = math.floor(raw * self._size_scale) / self._size_scale
        if size <= 0.0:
            return None
        return Quantity(size, self._size_precision)

    def on_position_opened(self, event: PositionOpened) -> None:
        self._position_id = event.position_id

    def on_position_closed(self, event: PositionClosed) -> None:
        if event.position_id == self._position_id:
            self._position_id = None

    def on_order_denied(self, event: OrderDenied) -> None:
        # The risk engine refused the entry (e.g. balance too small): we are still flat.
        if self._position_id is None:
            self.long = False

    def on_order_rejected(self, event: OrderRejected) -> None:
        if self._position_id is None:
            self.long = False
