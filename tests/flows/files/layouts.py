"""Files in each supported format's documented layout (`flows.files.layouts` quotes the
documents), with generated rows: what the import tests read.

Trades are generated in fold order (time, then id) with prices on a cent tick and sizes on a
1e-5 tick, bursts of trades in the same millisecond, and both sides; each writer prints them
as that format's publisher does.
"""

from __future__ import annotations

import gzip
import io
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from market.messages import Candle, Side, Trade

MS = 1_000_000
S = 1_000_000_000
#: 2024-03-01T23:50:00Z: ten minutes before midnight, so a day boundary falls inside.
T0 = 1_709_337_000 * S
#: 2025-03-01T00:00:00Z: Binance spot files are in microseconds from 2025 on.
T2025 = 1_740_787_200 * S


def sample_trades(
    count: int, *, start_ns: int = T0, seed: int = 3, unit_ns: int = MS, mean_gap_ms: int = 400,
    first_id: int = 3_000_000_000, exchange: str = "binance", symbol: str = "BTC-USDT",
) -> list[Trade]:
    """`count` trades from `start_ns`, times on a `unit_ns` grid, ids counting up."""
    rng = random.Random(seed)
    price = 62_000.0
    ts = start_ns
    out = []
    for i in range(count):
        if rng.random() > 0.3:  # else: the same instant as the previous trade
            ts += unit_ns * rng.randint(1, 2 * mean_gap_ms * MS // unit_ns)
        price = round(price + rng.choice((-1, 1)) * rng.randint(0, 300) / 100, 2)
        size = round(rng.lognormvariate(-6, 1.5), 5) or 0.00001
        side: Side = "sell" if rng.random() < 0.5 else "buy"
        out.append(Trade(exchange, symbol, ts, price, size, side, str(first_id + i)))
    return out


def _unit(trade_ns: int, unit_ns: int) -> int:
    assert trade_ns % unit_ns == 0
    return trade_ns // unit_ns


def _bool(value: bool, spot: bool) -> str:
    return ("True" if value else "False") if spot else ("true" if value else "false")


def binance_trades(trades: Sequence[Trade], *, spot: bool = True, header: bool = False,
                   unit_ns: int = MS) -> str:
    """spot: id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch (no header);
    futures: id,price,qty,quote_qty,time,is_buyer_maker."""
    lines = ["id,price,qty,quote_qty,time,is_buyer_maker"] if header else []
    for t in trades:
        row = [t.trade_id, f"{t.price:.8f}", f"{t.size:.8f}", f"{t.price * t.size:.8f}",
               str(_unit(t.ts, unit_ns)), _bool(t.side == "sell", spot)]
        if spot:
            row.append("True")
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def binance_aggtrades(trades: Sequence[Trade], *, spot: bool = True, header: bool = False,
                      unit_ns: int = MS) -> str:
    """spot: aggId,price,qty,firstId,lastId,timestamp,isBuyerMaker,isBestMatch;
    futures: agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,
    is_buyer_maker."""
    lines = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
             "is_buyer_maker"] if header else []
    for i, t in enumerate(trades):
        first = 9_000_000 + 3 * i
        row = [t.trade_id, f"{t.price:.8f}" if spot else repr(t.price), f"{t.size:.8f}",
               str(first), str(first + 2), str(_unit(t.ts, unit_ns)),
               _bool(t.side == "sell", spot)]
        if spot:
            row.append("True")
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def tardis_trades(trades: Sequence[Trade], *, ids: bool = True) -> str:
    """exchange,symbol,timestamp,local_timestamp,id,side,price,amount; times in µs."""
    lines = ["exchange,symbol,timestamp,local_timestamp,id,side,price,amount"]
    for t in trades:
        us = _unit(t.ts, 1000)
        lines.append(",".join([
            "binance", t.symbol.replace("-", ""), str(us), str(us + 1234),
            t.trade_id if ids else "", t.side, repr(t.price), repr(t.size),
        ]))
    return "\n".join(lines) + "\n"


def binance_klines(candles: Sequence[Candle], *, header: bool = False, unit_ns: int = MS,
                   width_ns: int = 60 * S) -> str:
    """open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,
    taker_buy_quote_volume,ignore."""
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,"
             "taker_buy_volume,taker_buy_quote_volume,ignore"] if header else []
    for c in candles:
        opened = _unit(c.ts, unit_ns)
        assert c.vwap is not None and c.trades is not None
        lines.append(",".join([
            str(opened), f"{c.open:.8f}", f"{c.high:.8f}", f"{c.low:.8f}", f"{c.close:.8f}",
            f"{c.volume:.8f}", str(opened + width_ns // unit_ns - 1),
            repr(c.vwap * c.volume), str(c.trades), f"{c.volume / 2:.8f}", "0.0", "0",
        ]))
    return "\n".join(lines) + "\n"


def generic_trades_frame(trades: Sequence[Trade]) -> pl.DataFrame:
    """A generic trade table with unusual names: When (datetime, UTC), Px, Amount, Aggressor,
    Ref."""
    return pl.DataFrame({
        "When": pl.Series([t.ts for t in trades]).cast(pl.Datetime("ns", "UTC")),
        "Px": [t.price for t in trades],
        "Amount": [t.size for t in trades],
        "Aggressor": [t.side.upper() for t in trades],
        "Ref": [f"T{t.trade_id}" for t in trades],
    })


def write(path: Path, text: str | bytes, compression: str = "none") -> Path:
    """Write `text` plainly, gzipped (`path` + .gz) or zipped (`path` + .zip, one member
    named like `path`); return the file written."""
    data = text.encode() if isinstance(text, str) else text
    if compression == "gzip":
        target = path.with_name(path.name + ".gz")
        target.write_bytes(gzip.compress(data))
    elif compression == "zip":
        target = path.with_name(path.name.removesuffix(".csv") + ".zip")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.name, data)
        target.write_bytes(buffer.getvalue())
    else:
        target = path
        target.write_bytes(data)
    return target
