"""ILP over HTTP: the sender, and store values as the frames the client's DataFrame path writes.

The questdb client serializes a whole pandas frame in native code (millions of rows a second),
so writes build columns with numpy and hand them over, never a Python loop of `row()` calls.
SYMBOL columns are pandas categoricals; the designated timestamp is the `ts` column
(datetime64[ns]). A candle without a trade count or a VWAP is written with those cells null
(a missing cell, and NaN, which QuestDB's DOUBLE stores as null).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pandas as pd
import polars as pl
from questdb import Sender

from db.backtest_store import BACKTEST_EQUITY_SCHEMA, BACKTEST_TRADE_SCHEMA
from db.indicator_store import IndicatorPoint
from db.store import StoreError
from market.messages import Candle

#: SYMBOL columns of each frame, as the DataFrame path's `symbols` argument wants them.
SYMBOLS: dict[str, list[str]] = {
    "candles": ["exchange", "symbol", "timeframe"],
    "indicators": ["exchange", "symbol", "timeframe", "name"],
    "backtest_trades": ["id", "side"],
    "backtest_equity": ["id"],
    "backtest_results": ["id"],
    "known_gaps": ["exchange", "symbol", "timeframe"],
}


def candles_dataframe(candles: Sequence[Candle]) -> pd.DataFrame:
    """Candles as the pandas frame the ILP DataFrame path serializes (`ts` the designated one)."""
    return pd.DataFrame(
        {
            "exchange": pd.Categorical([c.exchange for c in candles]),
            "symbol": pd.Categorical([c.symbol for c in candles]),
            "timeframe": pd.Categorical([c.timeframe for c in candles]),
            "open": np.fromiter((c.open for c in candles), np.float64, len(candles)),
            "high": np.fromiter((c.high for c in candles), np.float64, len(candles)),
            "low": np.fromiter((c.low for c in candles), np.float64, len(candles)),
            "close": np.fromiter((c.close for c in candles), np.float64, len(candles)),
            "volume": np.fromiter((c.volume for c in candles), np.float64, len(candles)),
            "trades": _counts([c.trades for c in candles]),
            "vwap": np.fromiter(
                (math.nan if c.vwap is None else c.vwap for c in candles), np.float64,
                len(candles),
            ),
            "closed": np.fromiter((c.closed for c in candles), np.bool_, len(candles)),
            "ts": np.fromiter((c.ts for c in candles), np.int64, len(candles)).astype(
                "datetime64[ns]"
            ),
        }
    )


def _counts(values: list[int | None]) -> np.ndarray | pd.arrays.IntegerArray:
    """Trade counts as int64, or as a nullable column when some are None: the DataFrame path
    leaves a null cell out of its row, so QuestDB stores null, not a number."""
    if None in values:
        return pd.array(values, dtype="Int64")
    return np.array(values, dtype=np.int64)


def sender_for(url: str, **options: Any) -> Sender:
    """An ILP/HTTP sender for `http[s]://[user:password@]host[:port]` (port 9000 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise StoreError(
            f"QuestDB URL must look like http://host:9000 (ILP over HTTP), got {url!r}"
        )
    conf = f"{parts.scheme}::addr={parts.hostname}:{parts.port or 9000};"
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    return Sender.from_conf(conf, **options)


def pg_url_for(http_url: str) -> str:
    """The PostgreSQL-wire URL of the QuestDB server behind an ILP/HTTP URL: the same host on
    port 8812, database `qdb`, and the URL's user and password (QuestDB's defaults, `admin`
    and `quest`, when it names no user). `http://admin:s3cret@db:9000` gives
    `postgresql://admin:s3cret@db:8812/qdb`."""
    parts = urlsplit(http_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise StoreError(
            f"QuestDB URL must look like http://host:9000 (ILP over HTTP), got {http_url!r}"
        )
    user, password = (
        (parts.username, parts.password or "") if parts.username else ("admin", "quest")
    )
    user, password = quote(unquote(user), safe=""), quote(unquote(password), safe="")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"postgresql://{user}:{password}@{host}:8812/qdb"


def _stamps(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype("datetime64[ns]")


def indicators_dataframe(points: Sequence[IndicatorPoint]) -> pd.DataFrame:
    """Indicator values as an ILP frame (NaN is written as QuestDB's null DOUBLE)."""
    return pd.DataFrame(
        {
            "exchange": pd.Categorical([p.exchange for p in points]),
            "symbol": pd.Categorical([p.symbol for p in points]),
            "timeframe": pd.Categorical([p.timeframe for p in points]),
            "name": pd.Categorical([p.name for p in points]),
            "value": np.fromiter((p.value for p in points), np.float64, len(points)),
            "ts": _stamps([p.ts for p in points]),
        }
    )


def gaps_dataframe(
    exchange: str, symbol: str, timeframe: str, gaps: Sequence[tuple[int, int]]
) -> pd.DataFrame:
    """Known gaps of one series as an ILP frame: `ts` is each gap's start, `end_ns` its end."""
    return pd.DataFrame(
        {
            "exchange": pd.Categorical([exchange] * len(gaps)),
            "symbol": pd.Categorical([symbol] * len(gaps)),
            "timeframe": pd.Categorical([timeframe] * len(gaps)),
            "end_ns": np.array([end for _, end in gaps], dtype=np.int64),
            "ts": _stamps([start for start, _ in gaps]),
        }
    )


def results_dataframes(
    id: str, gen_us: int, trades: pl.DataFrame, equity: pl.DataFrame
) -> dict[str, pd.DataFrame]:
    """One run's trades, equity curve and generation marker as ILP frames, all stamped with
    the generation (`ts`); empty frames are left out. Trades keep their order in `seq`."""
    at = np.datetime64(gen_us, "us").astype("datetime64[ns]")
    trade_frame = trades.select(list(BACKTEST_TRADE_SCHEMA)).to_pandas()
    trade_frame.insert(0, "seq", np.arange(len(trade_frame), dtype=np.int64))
    equity_frame = equity.select(list(BACKTEST_EQUITY_SCHEMA)).rename({"ts": "at_ns"}).to_pandas()
    frames = {}
    for name, frame in (("backtest_trades", trade_frame), ("backtest_equity", equity_frame)):
        if len(frame):
            frame.insert(0, "id", pd.Categorical([id] * len(frame)))
            frame["ts"] = at
            frames[name] = frame
    frames["backtest_results"] = pd.DataFrame(
        {"id": pd.Categorical([id]), "gen": [gen_us], "ts": [at]}
    )
    return frames
