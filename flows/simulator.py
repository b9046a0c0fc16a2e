"""The built-in trade simulator: a seeded random walk per symbol, with sizes and sides.

Pure: it makes `Trade`s for a time span and never touches the network or the clock, so the
same seed and spans give the same trades. `flows.publisher` sends them to NATS.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from market.messages import Side, Trade

DEFAULT_SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")

_START_PRICES = {
    "BTC-USDT": 65_000.0,
    "ETH-USDT": 3_400.0,
    "SOL-USDT": 150.0,
    "BNB-USDT": 580.0,
    "XRP-USDT": 0.52,
}


@dataclass(slots=True)
class _Walk:
    price: float
    decimals: int
    next_id: int = 1


class TradeSimulator:
    """Trades for `symbols` on `exchange`; prices move by `volatility` per trade (log scale)."""

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        *,
        seed: int = 1,
        exchange: str = "sim",
        volatility: float = 0.0004,
    ) -> None:
        if not symbols:
            raise ValueError("the simulator needs at least one symbol")
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self._rng = random.Random(seed)
        self._volatility = volatility
        self._walks: dict[str, _Walk] = {}
        for i, symbol in enumerate(self.symbols):
            price = _START_PRICES.get(symbol, 10.0 * (i + 1))
            # Round to a tick a real exchange might use: about six significant digits.
            decimals = max(0, 6 - math.floor(math.log10(price)))
            self._walks[symbol] = _Walk(round(price, decimals), decimals)

    def trades(self, symbol: str, count: int, start_ns: int, end_ns: int) -> list[Trade]:
        """`count` trades of `symbol` with timestamps spread evenly over [start_ns, end_ns)."""
        walk = self._walks[symbol]
        rng = self._rng
        step = (end_ns - start_ns) // count if count else 0
        out: list[Trade] = []
        for i in range(count):
            price = walk.price * math.exp(rng.gauss(0.0, self._volatility))
            walk.price = max(round(price, walk.decimals), 10.0**-walk.decimals)
            size = round(rng.lognormvariate(0.0, 1.0) * 1000.0 / walk.price, 6) or 1e-6
            side: Side = "buy" if rng.random() < 0.5 else "sell"
            out.append(Trade(
                self.exchange, symbol, start_ns + i * step, walk.price, size, side,
                str(walk.next_id),
            ))
            walk.next_id += 1
        return out

    def split(self, count: int) -> dict[str, int]:
        """Share `count` trades among the symbols, at random but in total exactly `count`."""
        shares = dict.fromkeys(self.symbols, 0)
        for _ in range(count):
            shares[self.symbols[self._rng.randrange(len(self.symbols))]] += 1
        return shares
