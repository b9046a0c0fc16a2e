"""The long/short strategy base, beside the long/flat one (`strategies.long_flat`).

A long/short strategy is flat, long or short one position of the instrument at a time. It sells
what it does not hold, so it needs a MARGIN account (the runner and the request checks refuse a
CASH one). Subclasses decide in `on_bar` and call `go_long(bar)`, `go_short(bar)` or
`go_flat()`; going from one side to the other closes the position and opens the new one, both
market orders filling at the close of the bar that raised the signal. This base sizes the
entries, tracks the position itself (no portfolio queries per bar) and recovers when an order
is refused.

Sizing is the long/flat one (`LongFlatConfig`): a fixed base quantity per entry, or a fraction
of the equity, fee included. The equity at an entry is the account's balance (realized PnL net
of fees) plus the open position's unrealized PnL at the bar's close less the fee to close it:
what the account holds once the position being reversed is closed.
"""

from __future__ import annotations

import math
from typing import Literal

from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import (
    OrderDenied,
    OrderRejected,
    PositionClosed,
    PositionOpened,
)
from nautilus_trader.model.identifiers import PositionId
from nautilus_trader.model.objects import Currency, Quantity
from nautilus_trader.model.position import Position
from nautilus_trader.trading.strategy import Strategy

from strategies.long_flat import LongFlatConfig

Side = Literal[-1, 0, 1]


class LongShortConfig(LongFlatConfig, frozen=True, kw_only=True):
    """What the runner fills in for every long/short strategy: the market and the sizing, as
    for long/flat strategies. Subclasses add their parameters."""


class LongShortStrategy(Strategy):  # type: ignore[misc]  # nautilus_trader is untyped: Strategy is Any
    """Base for long/short strategies: sizing, going long, short or flat, position tracking."""

    #: The config class holding this strategy's parameters; the registry reads it.
    config_type: type[LongShortConfig] = LongShortConfig

    def __init__(self, config: LongShortConfig) -> None:
        super().__init__(config)
        #: The side asked for: 1 long, -1 short, 0 flat (set before the fill arrives).
        self.side: Side = 0
        self._quote: Currency | None = None
        self._size_precision = 0
        self._size_scale = 1.0
        self._taker_fee = 0.0
        self._fixed_qty: Quantity | None = None
        self._position_id: PositionId | None = None
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
        """Go long when `above` turns true, short when it turns false (stop and reverse); the
        first bar only primes."""
        was_above = self._was_above
        self._was_above = above
        if was_above is None or above == was_above:
            return
        if above:
            self.go_long(bar)
        else:
            self.go_short(bar)

    def go_long(self, bar: Bar) -> None:
        """Hold a long position from this bar's close, closing a short one first."""
        self._go(bar, 1)

    def go_short(self, bar: Bar) -> None:
        """Hold a short position from this bar's close, closing a long one first."""
        self._go(bar, -1)

    def go_flat(self) -> None:
        """Close the position, if there is one."""
        if self.side == 0:
            return
        self.side = 0
        position = self._open_position()
        if position is not None:
            self.close_position(position)

    def _go(self, bar: Bar, side: Side) -> None:
        if self.side == side:
            return
        # Sized before the close goes out: the position is still open, and its unrealized
        # PnL counts in the equity.
        quantity = self._entry_quantity(bar)
        self.go_flat()
        if quantity is None:
            return
        self.side = side
        order_side = OrderSide.BUY if side == 1 else OrderSide.SELL
        order = self.order_factory.market(self.config.instrument_id, order_side, quantity)
        self.submit_order(order)

    def _open_position(self) -> Position | None:
        if self._position_id is None:
            return None
        position = self.cache.position(self._position_id)
        return position if position is not None and position.is_open else None

    def _entry_quantity(self, bar: Bar) -> Quantity | None:
        if self._fixed_qty is not None:
            return self._fixed_qty
        # Queried on entries only, never per bar.
        account = self.portfolio.account(self.config.instrument_id.venue)
        balance = account.balance_total(self._quote)
        if balance is None:
            return None
        close = bar.close.as_double()
        equity = balance.as_double()
        position = self._open_position()
        if position is not None:
            equity += position.unrealized_pnl(bar.close).as_double()
            equity -= position.quantity.as_double() * close * self._taker_fee
        raw = equity * self.config.equity_fraction / (close * (1.0 + self._taker_fee))
        # Rounds down: rounding up could commit more than the equity.
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
        # The risk engine refused the entry: no position is held.
        if self._position_id is None:
            self.side = 0

    def on_order_rejected(self, event: OrderRejected) -> None:
        if self._position_id is None:
            self.side = 0
