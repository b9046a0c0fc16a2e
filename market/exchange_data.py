"""Exchange data as ccxt gives it, turned into our messages at the edge.

- Names: ccxt's `BTC/USDT` is our `BTC-USDT`; exchange ids are lower case (`binance`). Only
  spot-style `BASE/QUOTE` markets map onto our symbols.
- Trades: ccxt's unified trade structure (`timestamp` in ms, `price`, `amount`, `side`, `id`,
  `symbol`) becomes a `Trade` (ns, a string id, side `buy`/`sell`/`unknown`), or a `Rejected`
  with the reason a bad trade is dead-lettered for: `bad_symbol` (not the market asked for),
  `missing_field` (no id or time), `bad_price`, `bad_size`, `bad_timestamp`,
  `future_timestamp`, as `market.messages.trade_problem` names them.
- Candles: a ccxt OHLCV row `[ms, open, high, low, close, volume]` becomes a closed `Candle`
  with neither a trade count nor a VWAP, which OHLCV does not carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from market.messages import (
    EXCHANGE_PATTERN,
    SYMBOL_PATTERN,
    Candle,
    Rejected,
    Side,
    Trade,
)

NS_PER_MS = 1_000_000
_SIDES: dict[Any, Side] = {"buy": "buy", "sell": "sell"}


class ExchangeNameError(ValueError):
    """An exchange id or market symbol that has no canonical form."""


def exchange_name(exchange_id: str) -> str:
    """A ccxt exchange id as our lower-case exchange name."""
    name = exchange_id.strip().lower()
    if not EXCHANGE_PATTERN.match(name):
        raise ExchangeNameError(
            f"exchange must be a ccxt exchange id such as binance ([a-z0-9_]), got {exchange_id!r}"
        )
    return name


def canonical_symbol(symbol: str) -> str:
    """`BTC/USDT` (ccxt) or `BTC-USDT` (ours) as our `BTC-USDT`."""
    text = symbol.strip().upper()
    base, sep, quote = text.replace("/", "-", 1).partition("-")
    canonical = f"{base}-{quote}"
    if not sep or not SYMBOL_PATTERN.match(canonical):
        raise ExchangeNameError(
            f"symbol must be a spot market as BASE/QUOTE (ccxt) or BASE-QUOTE, such as BTC/USDT,"
            f" got {symbol!r}"
        )
    return canonical


def ccxt_symbol(symbol: str) -> str:
    """Our `BTC-USDT` (or ccxt's `BTC/USDT`) as ccxt's `BTC/USDT`."""
    return canonical_symbol(symbol).replace("-", "/", 1)


def _payload(raw: Any) -> bytes:
    """The exchange's own record, as JSON (`Rejected.of` keeps a bounded excerpt of it)."""
    info = raw.get("info", raw) if isinstance(raw, dict) else raw
    return msgspec.json.encode(info, enc_hook=repr)


class TradeConverter:
    """Converts ccxt trades of one market (`exchange`, our `symbol`) into `Trade`s.

    The market's names are checked once here, so each trade only has its values checked.
    A trade more than `max_future_ns` ahead of `now_ns` is rejected as `future_timestamp`.
    """

    def __init__(self, exchange: str, symbol: str, *, max_future_ns: int) -> None:
        self.exchange = exchange_name(exchange)
        self.symbol = canonical_symbol(symbol)
        self.ccxt_symbol = ccxt_symbol(symbol)
        self.max_future_ns = max_future_ns

    def convert(
        self, raw_trades: Sequence[dict[str, Any]], *, now_ns: int
    ) -> tuple[list[Trade], list[Rejected]]:
        """The valid trades, in order, and the rejected ones with their reasons."""
        trades: list[Trade] = []
        rejected: list[Rejected] = []
        exchange, symbol, market = self.exchange, self.symbol, self.ccxt_symbol
        latest = now_ns + self.max_future_ns
        for raw in raw_trades:
            try:
                stamp = raw["timestamp"]
                price = raw["price"]
                size = raw["amount"]
                trade_id = raw["id"]
                found = raw["symbol"]
            except (KeyError, TypeError):
                rejected.append(self._reject(raw, "missing_field", "not a ccxt trade structure"))
                continue
            if type(price) is int:
                price = float(price)
            if type(size) is int:
                size = float(size)
            if found != market:
                problem = ("bad_symbol", f"trade of {found!r} in the stream of {market!r}")
            elif trade_id is None or trade_id == "":
                problem = ("missing_field", "trade has no id")
            elif type(stamp) is not int:
                problem = ("missing_field", f"timestamp must be integer ms, got {stamp!r}")
            elif type(price) is not float or not (price > 0 and math.isfinite(price)):
                problem = ("bad_price", f"price must be finite and > 0, got {price!r}")
            elif type(size) is not float or not (size >= 0 and math.isfinite(size)):
                problem = ("bad_size", f"size must be finite and >= 0, got {size!r}")
            elif stamp <= 0:
                problem = ("bad_timestamp", f"timestamp must be positive ms, got {stamp}")
            elif stamp * NS_PER_MS > latest:
                problem = ("future_timestamp", f"timestamp {stamp} ms is ahead of now")
            else:
                trades.append(Trade(
                    exchange, symbol, stamp * NS_PER_MS, price, size,
                    _SIDES.get(raw.get("side"), "unknown"), str(trade_id),
                ))
                continue
            rejected.append(self._reject(raw, *problem))
        return trades, rejected

    def _reject(self, raw: Any, reason: str, detail: str) -> Rejected:
        where = f"{self.exchange}:{self.symbol}"
        return Rejected.of(reason, f"{where}: {detail}", _payload(raw))


def candles_from_ohlcv(
    rows: Sequence[Sequence[Any]], exchange: str, symbol: str, timeframe: str
) -> tuple[list[Candle], list[Rejected]]:
    """ccxt OHLCV rows as closed candles (no trade count, no VWAP), and the malformed rows."""
    candles: list[Candle] = []
    rejected: list[Rejected] = []
    for row in rows:
        try:
            stamp, open_, high, low, close, volume = row[:6]
            values = [float(v) for v in (open_, high, low, close, volume)]
        except (TypeError, ValueError) as error:
            rejected.append(Rejected.of("bad_field", f"not an OHLCV row: {error}", _payload(row)))
            continue
        o, h, lo, c, v = values
        if type(stamp) is not int or stamp < 0:
            rejected.append(Rejected.of("bad_timestamp", f"time must be ms, got {stamp!r}",
                                     _payload(row)))
        elif not all(math.isfinite(x) and x > 0 for x in (o, h, lo, c)) or not (
            lo <= min(o, c) and h >= max(o, c)
        ):
            rejected.append(Rejected.of("bad_price", "prices must be > 0 with low <= open, close"
                                     " <= high", _payload(row)))
        elif not (math.isfinite(v) and v >= 0):
            rejected.append(Rejected.of("bad_size", f"volume must be >= 0, got {v!r}",
                                     _payload(row)))
        else:
            candles.append(Candle(exchange, symbol, timeframe, stamp * NS_PER_MS, o, h, lo, c, v,
                                  None, None, True))
    return candles, rejected
