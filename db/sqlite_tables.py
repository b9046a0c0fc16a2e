"""The embedded store's tables, created at open (each `IF NOT EXISTS`).

Primary keys are the natural keys, so every write is an upsert. `series` holds each series'
extent (see `db.sqlite`); `indicator_names` the names stored per series, so reading "all
names" does not scan the values.

Indicator values are stored one row per (series, ts), all names of that row as one JSON object
(`{"sma_20": 101.25, ...}`, floats in their shortest round-trip form) in `indicator_values`, keyed
by a small integer from `series_ids`. The flow writes every name of a candle at once: one row
instead of 19, appended in arrival order, with a small (series, ts) index, dirties few pages
per commit (a WAL page per series touched is what a commit costs; rows clustered by series
touch one each). That writes values about five times as fast as one row per value.
`indicators` is a view with the earlier one-row-per-value shape, for SQL by hand. A file with
the earlier `indicators` table is migrated when opened (`db.sqlite`).

`candles.trades` and `candles.vwap` are NULL for candles that do not carry them (an exchange's
OHLCV history). Files from before that had them NOT NULL; `NULLABLE_CANDLES` rebuilds such a
`candles` table once, when the file is opened.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts INTEGER NOT NULL,
    open REAL NOT NULL,
    high REAL NOT NULL,
    low REAL NOT NULL,
    close REAL NOT NULL,
    volume REAL NOT NULL,
    trades INTEGER,
    vwap REAL,
    closed INTEGER NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    last_close REAL NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series_ids (
    id INTEGER PRIMARY KEY,
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    UNIQUE (exchange, symbol, timeframe)
);
CREATE TABLE IF NOT EXISTS indicator_values (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    values_json TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS indicator_values_by_series_ts
    ON indicator_values (series, ts);
CREATE TABLE IF NOT EXISTS indicator_names (
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS known_gaps (
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, start_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backtests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    strategy TEXT NOT NULL,
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    started_ns INTEGER,
    finished_ns INTEGER,
    progress REAL NOT NULL,
    error TEXT,
    spec_json TEXT NOT NULL,
    metrics_json TEXT,
    sweep_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS backtests_by_created ON backtests (created_ns DESC, id);
CREATE INDEX IF NOT EXISTS backtests_by_sweep ON backtests (sweep_id, created_ns DESC, id);
CREATE TABLE IF NOT EXISTS backtest_trades (
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    position_id TEXT NOT NULL,
    side TEXT NOT NULL,
    entry_ts INTEGER NOT NULL,
    exit_ts INTEGER NOT NULL,
    entry_price REAL NOT NULL,
    exit_price REAL NOT NULL,
    quantity REAL NOT NULL,
    pnl REAL NOT NULL,
    fees REAL NOT NULL,
    net_return REAL NOT NULL,
    PRIMARY KEY (id, exit_ts, position_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backtest_equity (
    id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    equity REAL NOT NULL,
    position REAL NOT NULL,
    PRIMARY KEY (id, ts)
) WITHOUT ROWID;
"""

#: Columns added to `backtests` after its first layout, each with its definition: a file
#: from before them gets them when opened.
BACKTEST_ADDED_COLUMNS: dict[str, str] = {
    "attempt": "INTEGER NOT NULL DEFAULT 0",
    "worker": "TEXT",
}

#: One row per stored value, like the `indicators` table of files before `indicator_values`.
#: Created once no such table is left (the file is new, or migrated).
INDICATORS_VIEW = """
CREATE VIEW IF NOT EXISTS indicators (exchange, symbol, timeframe, ts, name, value) AS
SELECT s.exchange, s.symbol, s.timeframe, v.ts, j.key, j.value
FROM indicator_values AS v JOIN series_ids AS s ON s.id = v.series, json_each(v.values_json) AS j
WHERE j.type != 'null'
"""

#: Fills `series` for a file written before that table existed.
BACKFILL_SERIES = """
INSERT INTO series (exchange, symbol, timeframe, first_ns, last_ns, last_close)
SELECT g.exchange, g.symbol, g.timeframe, g.first_ns, g.last_ns, c.close
FROM (SELECT exchange, symbol, timeframe, min(ts) AS first_ns, max(ts) AS last_ns
      FROM candles GROUP BY exchange, symbol, timeframe) AS g
JOIN candles AS c ON c.exchange = g.exchange AND c.symbol = g.symbol
                 AND c.timeframe = g.timeframe AND c.ts = g.last_ns
"""

#: Rebuild a `candles` table whose `trades` and `vwap` are NOT NULL (files from before
#: exchange candles) with the columns of `SCHEMA`, keeping every row: SQLite cannot drop a NOT
#: NULL constraint in place. Statements to run one by one inside the opening transaction.
NULLABLE_CANDLES: tuple[str, ...] = (
    """CREATE TABLE candles_nullable (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        ts INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        trades INTEGER,
        vwap REAL,
        closed INTEGER NOT NULL,
        PRIMARY KEY (exchange, symbol, timeframe, ts)
    ) WITHOUT ROWID""",
    """INSERT INTO candles_nullable
        SELECT exchange, symbol, timeframe, ts, open, high, low, close, volume, trades, vwap,
               closed
        FROM candles""",
    "DROP TABLE candles",
    "ALTER TABLE candles_nullable RENAME TO candles",
)
