"""The file layouts CandleGraph reads, as their publishers document them.

Binance public data (data.binance.vision; binance/binance-public-data README):
- spot `trades`: id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch; no header row;
- futures `trades`: id, price, qty, quote_qty, time, is_buyer_maker; a header row in files
  from about mid-2022 on, none before;
- spot `aggTrades`: aggId, price, qty, firstId, lastId, timestamp, isBuyerMaker, isBestMatch;
  no header row;
- futures `aggTrades`: agg_trade_id, price, quantity, first_trade_id, last_trade_id,
  transact_time, is_buyer_maker; a header row in newer files;
- `klines` (spot and futures): open_time, open, high, low, close, volume, close_time,
  quote_volume, count, taker_buy_volume, taker_buy_quote_volume, ignore; a header row in newer
  futures files.
Booleans are `True`/`False` in spot files and `true`/`false` in futures ones. Times are
milliseconds since the epoch, except spot files from 2025-01-01 on, in microseconds.

Tardis.dev `trades` CSV: a header row `exchange,symbol,timestamp,local_timestamp,id,side,
price,amount`; times in microseconds; `side` is the taker's (`buy`, `sell`, `unknown`); `id`
may be empty.

Each layout names its fields (`_` marks a field that is not read) and what their values look
like, one letter per field: `i` an integer, `d` a decimal number (an integer too), `b` a
boolean, `s` anything. Headerless files are recognised by that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["trades", "candles"]

#: `--format` names.
BINANCE_TRADES = "binance-trades"
BINANCE_AGGTRADES = "binance-aggtrades"
BINANCE_KLINES = "binance-klines"
TARDIS_TRADES = "tardis-trades"
GENERIC_TRADES = "trades"
GENERIC_CANDLES = "candles"

FORMATS: dict[str, Kind] = {
    BINANCE_TRADES: "trades",
    BINANCE_AGGTRADES: "trades",
    BINANCE_KLINES: "candles",
    TARDIS_TRADES: "trades",
    GENERIC_TRADES: "trades",
    GENERIC_CANDLES: "candles",
}


@dataclass(frozen=True, slots=True)
class Layout:
    """A fixed CSV layout: field names in order, the shape of their values, and the header
    rows it may start with (none: the layout never has one)."""

    format: str
    variant: str
    fields: tuple[str, ...]
    shapes: str
    headers: tuple[tuple[str, ...], ...] = ()
    header_required: bool = False

    @property
    def kind(self) -> Kind:
        return FORMATS[self.format]

    @property
    def label(self) -> str:
        return f"{self.format} ({self.variant})"


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        BINANCE_TRADES, "spot",
        ("id", "price", "size", "_", "ts", "buyer_maker", "_"), "idddibb",
    ),
    Layout(
        BINANCE_TRADES, "futures",
        ("id", "price", "size", "_", "ts", "buyer_maker"), "idddib",
        (("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),),
    ),
    Layout(
        BINANCE_AGGTRADES, "spot",
        ("id", "price", "size", "_", "_", "ts", "buyer_maker", "_"), "iddiiibb",
    ),
    Layout(
        BINANCE_AGGTRADES, "futures",
        ("id", "price", "size", "_", "_", "ts", "buyer_maker"), "iddiiib",
        (("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id",
          "transact_time", "is_buyer_maker"),),
    ),
    Layout(
        BINANCE_KLINES, "spot or futures",
        ("ts", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
         "trades", "_", "_", "_"),
        "idddddididdd",
        (("open_time", "open", "high", "low", "close", "volume", "close_time",
          "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"),),
    ),
    Layout(
        TARDIS_TRADES, "trades",
        ("_", "_", "ts", "_", "id", "side", "price", "size"), "ssiissdd",
        (("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price",
          "amount"),),
        header_required=True,
    ),
)
