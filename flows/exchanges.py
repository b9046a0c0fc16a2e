"""ccxt exchanges as the feed and the backfill use them: built from settings, one place.

`open_exchange` picks ccxt.pro's class when the exchange has websockets there (for
`watch_trades`), else ccxt's asyncio REST class, and configures it:

- `enableRateLimit` stays on: ccxt spaces requests by the exchange's documented rate;
- for Binance, spot markets only (the default also asks the futures APIs), no currency or
  margin look-ups (they need keys), and the websocket trade cache raised so a slow reader
  loses nothing before the feed notices (see `flows.trade_feed`);
- then `config` (a JSON object from `CANDLEGRAPH_EXCHANGE_CONFIG`) is merged in, key by key,
  for anything else ccxt takes: another `rateLimit`, `urls` (a test exchange), `options`.

No API key is needed: the feed and the backfill read public market data only.

For Binance's websocket, `LeanBinance` is ccxt.pro's `binance` with a shorter path for public
`trade` and `aggTrade` events: ccxt's generic parsing (a dispatch table built per message,
ISO dates, cost in decimal strings) costs about 35 µs a trade, which held a feed to some
12,000 trades/s on a core; the lean path gives the fields the feed reads (`id`, `timestamp`,
`price`, `amount`, `side`, `symbol`, `info`), equal to ccxt's (tested), in a fraction of it.
Every other message, REST, connection handling and subscription stay ccxt's.
"""

from __future__ import annotations

import json
from typing import Any

import ccxt
import ccxt.async_support
import ccxt.pro

#: Exchange-specific defaults, merged under the operator's config.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "binance": {
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
    },
}

#: Trades ccxt keeps per market between two reads of the stream.
TRADES_CACHE = 10_000


class ExchangeConfigError(ValueError):
    """An exchange ccxt does not know, or a config that is not a JSON object."""


def parse_config(text: str) -> dict[str, Any]:
    """`CANDLEGRAPH_EXCHANGE_CONFIG` as a dict (empty text: none)."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExchangeConfigError(f"exchange config is not JSON: {error}") from error
    if not isinstance(config, dict):
        raise ExchangeConfigError(
            f"exchange config must be a JSON object of ccxt settings, got {type(config).__name__}"
        )
    return config


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: nested objects key by key, anything else replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def check_exchange(exchange_id: str) -> None:
    """Raise `ExchangeConfigError` unless ccxt knows the exchange."""
    if exchange_id not in ccxt.exchanges:
        raise ExchangeConfigError(
            f"ccxt has no exchange {exchange_id!r}; it has {len(ccxt.exchanges)}, such as"
            f" {', '.join(ccxt.exchanges[:8])} (ccxt.exchanges lists them)"
        )


#: Binance's public trade events, and the field holding each one's trade id.
_TRADE_EVENTS = {"trade": "t", "aggTrade": "a"}


def _number(text: Any) -> float | None:
    """A decimal string as ccxt's `safe_number` reads it: a float, or None."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class LeanBinance(ccxt.pro.binance):
    """ccxt.pro's binance, with public trade events parsed only as far as the feed needs."""

    def handle_message(self, client: Any, message: Any) -> Any:
        if type(message) is dict and message.get("e") in _TRADE_EVENTS and "ps" not in message:
            return self.handle_trade(client, message)
        return super().handle_message(client, message)

    def parse_ws_trade(self, trade: dict[str, Any], market: Any = None) -> dict[str, Any]:
        key = _TRADE_EVENTS.get(trade.get("e", ""))
        if key is None or "x" in trade or "ps" in trade:
            return super().parse_ws_trade(trade, market)
        trade_id = trade.get(key)
        stamp = trade.get("T")
        maker = trade.get("m")
        return {
            "info": trade,
            "timestamp": stamp if type(stamp) is int else None,
            "datetime": None,  # not read by the feed; ccxt's ISO rendering costs the most
            "symbol": market["symbol"] if market else None,
            "id": None if trade_id is None else str(trade_id),
            "order": None,
            "type": None,
            "takerOrMaker": None if maker is None else ("maker" if maker else "taker"),
            "side": None if maker is None else ("sell" if maker else "buy"),
            "price": _number(trade.get("p")),
            "amount": _number(trade.get("q")),
            "cost": None,
            "fee": None,
            "fees": [],
        }


def open_exchange(exchange_id: str, config: dict[str, Any], *, streaming: bool) -> Any:
    """A ccxt exchange instance (call `await exchange.close()` when done). With `streaming`,
    ccxt.pro's class when the exchange has websockets there."""
    check_exchange(exchange_id)
    settings = merged(
        {"enableRateLimit": True, "options": {"tradesLimit": TRADES_CACHE}},
        _DEFAULTS.get(exchange_id, {}),
    )
    settings = merged(settings, config)
    if streaming and exchange_id == "binance":
        return LeanBinance(settings)
    if streaming and exchange_id in ccxt.pro.exchanges:
        return getattr(ccxt.pro, exchange_id)(settings)
    return getattr(ccxt.async_support, exchange_id)(settings)


def streams_trades(exchange: Any) -> bool:
    """Whether the instance can watch trades over a websocket."""
    return bool(exchange.has.get("watchTrades"))
