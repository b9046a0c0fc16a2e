"""The embedded store's tables, created at open (each `IF NOT EXISTS`).

Primary keys are the natural keys, so every write is an upsert. `series` holds each series'
extent (see `db.sqlite`); `indicator_names` the names stored per series, so reading "all
names" does not scan the values.

Indicator values written one candle at a time (the live flow's) are stored one row per
(series, ts), all names of that row as one JSON object (`{"sma_20": 101.25, ...}`, floats in
their shortest round-trip form) in `indicator_values`, keyed by a small integer from
`series_ids`. The flow writes every name of a candle at once: one row instead of 19, appended
in arrival order, with a small (series, ts) index, dirties few pages per commit (a WAL page per
series touched is what a commit costs; rows clustered by series touch one each). That writes
values about five times as fast as one row per value.

History (an import, a backfill) is written in blocks of up to 480 candle times
(`db.indicator_blocks`): a row of `indicator_blocks` with the times as a JSON array, and a row
of `indicator_block_values` per name with a value there, the values as big-endian doubles.
That writes history about twice as fast as rows of JSON objects, in half the space. A block
spans `first_ts` to `last_ts`; the blocks of a series do not overlap, and no
`indicator_values` row of the series lies in their span (a write there is merged into the
block), so each value is in one place.

Candles follow the same split: the live flow's are rows of `candle_rows`; history's are
blocks of up to 1,000 candles of a series in `candle_blocks` (`db.candle_blocks`), each the
candles as packed little-endian records, keyed by `series_ids` like the indicator blocks. A
block spans `first_ts` to `last_ts`; the blocks of a series do not overlap and no
`candle_rows` row of the series lies in their span. That writes history about five times as
fast as a row per candle. `candles` is a view of both, one row per candle, for SQL by hand
(`CANDLES_VIEW`); a file whose `candles` is the earlier table has it renamed `candle_rows`
when opened.

`indicators` is a view with the earlier one-row-per-value shape over both tables, for SQL by
hand. A file with the earlier `indicators` table is migrated when opened (`db.sqlite`).

`trades` and `vwap` are NULL for candles that do not carry them (an exchange's OHLCV
history). Files from before that had them NOT NULL; `NULLABLE_CANDLES` rebuilds such a
`candle_rows` table once, when the file is opened.
"""

from __future__ import annotations

from db.candle_blocks import BLOCK_CANDLES, OFFSETS, RECORD

SCHEMA = """
CREATE TABLE IF NOT EXISTS candle_rows (
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
CREATE TABLE IF NOT EXISTS candle_blocks (
    series INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    records BLOB NOT NULL,
    UNIQUE (series, first_ts)
);
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
CREATE TABLE IF NOT EXISTS indicator_blocks (
    series INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    ts_json TEXT NOT NULL,
    PRIMARY KEY (series, first_ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indicator_block_values (
    series INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    name TEXT NOT NULL,
    values_blob BLOB NOT NULL,
    UNIQUE (series, first_ts, name)
);
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

#: One row per stored value, like the `indicators` table of files before `indicator_values`:
#: those of `indicator_values`, then those of `indicator_blocks`. SQLite 3.40 has no function
#: that reads a double from bytes, so the view takes the 8 big-endian bytes of each block value
#: apart: a byte's number is its position in a blob of all 256 (`instr`), the sign is the top
#: bit, then 11 bits of exponent and 52 of fraction; every step is exact (an integer below
#: 2**53 times a power of two). The NaN of no value is left out. Created once no `indicators`
#: table is left (the file is new, or migrated); a file with another definition gets this one.
INDICATORS_VIEW = f"""
CREATE VIEW indicators (exchange, symbol, timeframe, ts, name, value) AS
WITH
block_byte AS (
    SELECT series, ts, name,
        instr(x.bytes, substr(bits, 1, 1)) - 1 AS b0, instr(x.bytes, substr(bits, 2, 1)) - 1 AS b1,
        instr(x.bytes, substr(bits, 3, 1)) - 1 AS b2, instr(x.bytes, substr(bits, 4, 1)) - 1 AS b3,
        instr(x.bytes, substr(bits, 5, 1)) - 1 AS b4, instr(x.bytes, substr(bits, 6, 1)) - 1 AS b5,
        instr(x.bytes, substr(bits, 7, 1)) - 1 AS b6, instr(x.bytes, substr(bits, 8, 1)) - 1 AS b7
    FROM (
        SELECT b.series, t.value AS ts, v.name, substr(v.values_blob, t.key * 8 + 1, 8) AS bits
        FROM indicator_blocks AS b, json_each(b.ts_json) AS t
        JOIN indicator_block_values AS v ON v.series = b.series AND v.first_ts = b.first_ts
    ), (SELECT X'{bytes(range(256)).hex()}' AS bytes) AS x
    WHERE bits != X'7FF8000000000000'  -- numpy's NaN, the only one blocks hold
),
block_value AS (
    SELECT series, ts, name, b0 >= 128 AS negative, (b0 & 127) * 16 + (b1 >> 4) AS exponent,
        ((b1 & 15) << 48) + (b2 << 40) + (b3 << 32) + (b4 << 24) + (b5 << 16) + (b6 << 8) + b7
        AS fraction
    FROM block_byte
)
SELECT s.exchange, s.symbol, s.timeframe, v.ts, j.key, j.value
FROM indicator_values AS v JOIN series_ids AS s ON s.id = v.series, json_each(v.values_json) AS j
WHERE j.type != 'null'
UNION ALL
SELECT s.exchange, s.symbol, s.timeframe, v.ts, v.name,
    CASE WHEN v.negative THEN -1.0 ELSE 1.0 END * CASE v.exponent
        WHEN 0 THEN v.fraction * pow(2, -1074)
        ELSE (v.fraction + 4503599627370496) * pow(2, v.exponent - 1075) END
FROM block_value AS v JOIN series_ids AS s ON s.id = v.series
"""

#: Fills `series` for a file written before that table existed.
BACKFILL_SERIES = """
INSERT INTO series (exchange, symbol, timeframe, first_ns, last_ns, last_close)
SELECT g.exchange, g.symbol, g.timeframe, g.first_ns, g.last_ns, c.close
FROM (SELECT exchange, symbol, timeframe, min(ts) AS first_ns, max(ts) AS last_ns
      FROM candle_rows GROUP BY exchange, symbol, timeframe) AS g
JOIN candle_rows AS c ON c.exchange = g.exchange AND c.symbol = g.symbol
                 AND c.timeframe = g.timeframe AND c.ts = g.last_ns
"""

#: Rebuild a `candle_rows` table whose `trades` and `vwap` are NOT NULL (files from before
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
        FROM candle_rows""",
    "DROP TABLE candle_rows",
    "ALTER TABLE candles_nullable RENAME TO candle_rows",
)


def _byte(offset: int) -> str:
    """The SQL of the record's byte at `offset`, as a number (see `INDICATORS_VIEW`)."""
    return f"instr(x.bytes, substr(r.record, {offset + 1}, 1)) - 1"


def _integer(offset: int) -> str:
    """The SQL of the little-endian 64-bit integer at `offset` of a record."""
    return " | ".join(f"({_byte(offset + k)} << {8 * k})" for k in range(8))


def _double(offset: int) -> str:
    """The SQL of the little-endian double at `offset` of a record (NULL for NaN), taken apart
    as `INDICATORS_VIEW` takes a big-endian one."""
    top, next_ = _byte(offset + 7), _byte(offset + 6)
    fraction = " | ".join(
        [f"(({next_}) & 15) << 48", *(f"({_byte(offset + k)} << {8 * k})" for k in range(6))]
    )
    exponent = f"(({top}) & 127) * 16 + (({next_}) >> 4)"
    return f"""(CASE WHEN ({top}) >= 128 THEN -1.0 ELSE 1.0 END * CASE {exponent}
        WHEN 0 THEN ({fraction}) * pow(2, -1074)
        WHEN 2047 THEN NULL
        ELSE (({fraction}) + 4503599627370496) * pow(2, {exponent} - 1075) END)"""


#: One row per candle, like the `candles` table of files before `candle_rows`: the rows,
#: then the records of every block, taken apart byte by byte (`db.candle_blocks.RECORD`:
#: little-endian integers and doubles; a trade count of -1 and a NaN VWAP are NULL). Every
#: block is decoded whatever the query asks for: fine for a look, slow over years of history,
#: which the API reads from the blocks directly.
CANDLES_VIEW = f"""
CREATE VIEW candles (exchange, symbol, timeframe, ts, open, high, low, close, volume, trades,
                     vwap, closed) AS
WITH RECURSIVE
k (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < {BLOCK_CANDLES - 1}),
r AS MATERIALIZED (
    SELECT b.series, substr(b.records, k.i * {RECORD.itemsize} + 1, {RECORD.itemsize}) AS record
    FROM candle_blocks AS b JOIN k ON k.i < length(b.records) / {RECORD.itemsize}
),
v AS (
    SELECT r.series, {_integer(OFFSETS["ts"])} AS ts,
        {_double(OFFSETS["open"])} AS open, {_double(OFFSETS["high"])} AS high,
        {_double(OFFSETS["low"])} AS low, {_double(OFFSETS["close"])} AS close,
        {_double(OFFSETS["volume"])} AS volume, {_integer(OFFSETS["trades"])} AS trades,
        {_double(OFFSETS["vwap"])} AS vwap, {_byte(OFFSETS["closed"])} AS closed
    FROM r, (SELECT X'{bytes(range(256)).hex()}' AS bytes) AS x
)
SELECT exchange, symbol, timeframe, ts, open, high, low, close, volume, trades, vwap, closed
FROM candle_rows
UNION ALL
SELECT s.exchange, s.symbol, s.timeframe, v.ts, v.open, v.high, v.low, v.close, v.volume,
    CASE WHEN v.trades >= 0 THEN v.trades END, v.vwap, v.closed
FROM v JOIN series_ids AS s ON s.id = v.series
"""
