"""QuestDB's tables: their CREATE statements, run at start (each `IF NOT EXISTS`).

Every table is a WAL table with `DEDUP UPSERT KEYS` on its natural key and the designated
timestamp, so a replayed or corrected row replaces the stored one. Names, symbols and kinds
are SYMBOL columns; free text is VARCHAR. Nothing here needs more than QuestDB 8.0 (no arrays,
TTL, DECIMAL or materialized views).
"""

from __future__ import annotations

#: Table name (without prefix) -> CREATE TABLE statement; `{t}` is the prefixed name.
TABLES: dict[str, str] = {
    "candles": """
        CREATE TABLE IF NOT EXISTS {t} (
            exchange SYMBOL, symbol SYMBOL, timeframe SYMBOL,
            open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE,
            trades LONG, vwap DOUBLE, closed BOOLEAN, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY DAY WAL
        DEDUP UPSERT KEYS(ts, exchange, symbol, timeframe)""",
    "indicators": """
        CREATE TABLE IF NOT EXISTS {t} (
            exchange SYMBOL, symbol SYMBOL, timeframe SYMBOL, name SYMBOL,
            value DOUBLE, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY DAY WAL
        DEDUP UPSERT KEYS(ts, exchange, symbol, timeframe, name)""",
    # ts is the gap's start; end_ns its end (exclusive), in ns.
    "known_gaps": """
        CREATE TABLE IF NOT EXISTS {t} (
            exchange SYMBOL, symbol SYMBOL, timeframe SYMBOL, end_ns LONG, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY YEAR WAL
        DEDUP UPSERT KEYS(ts, exchange, symbol, timeframe)""",
    # ts is the fixed created_ns, so every update of a record replaces its one row.
    "backtests": """
        CREATE TABLE IF NOT EXISTS {t} (
            id SYMBOL CAPACITY 65536 NOCACHE, kind SYMBOL, status SYMBOL, strategy SYMBOL,
            exchange SYMBOL, symbol SYMBOL, timeframe SYMBOL,
            start_ns LONG, end_ns LONG, created_ns LONG, started_ns LONG, finished_ns LONG,
            progress DOUBLE, error VARCHAR, spec_json VARCHAR, metrics_json VARCHAR,
            sweep_id SYMBOL CAPACITY 65536 NOCACHE, attempt LONG, worker VARCHAR, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY MONTH WAL
        DEDUP UPSERT KEYS(ts, id)""",
    # ts is the generation of the results (microseconds, increasing per store).
    "backtest_results": """
        CREATE TABLE IF NOT EXISTS {t} (
            id SYMBOL CAPACITY 65536 NOCACHE, gen LONG, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY MONTH WAL
        DEDUP UPSERT KEYS(ts, id)""",
    "backtest_trades": """
        CREATE TABLE IF NOT EXISTS {t} (
            id SYMBOL CAPACITY 65536 NOCACHE, seq LONG, position_id VARCHAR, side SYMBOL,
            entry_ts LONG, exit_ts LONG, entry_price DOUBLE, exit_price DOUBLE,
            quantity DOUBLE, pnl DOUBLE, fees DOUBLE, net_return DOUBLE, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY MONTH WAL
        DEDUP UPSERT KEYS(ts, id, seq)""",
    "backtest_equity": """
        CREATE TABLE IF NOT EXISTS {t} (
            id SYMBOL CAPACITY 65536 NOCACHE, at_ns LONG, equity DOUBLE, position DOUBLE,
            ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY MONTH WAL
        DEDUP UPSERT KEYS(ts, id, at_ns)""",
}

#: Columns added to tables after their first layout: a table created before them gets them
#: at start (`ALTER TABLE {t} ADD COLUMN IF NOT EXISTS ...`).
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "backtests": ("attempt LONG", "worker VARCHAR"),
}
