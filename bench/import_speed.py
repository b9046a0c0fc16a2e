"""How fast `candlegraph import` fills the embedded store. Prints `name: value unit`.

Generates, once, under `--data` (default /tmp/candlegraph-bench-import):
- a month of BTC-USDT-like trades (`--days` 30 by default, about 1M trades a day: 30M): a
  price walk on a cent tick around 62,000 with a per-trade volatility of 1.2e-5, log-normal
  sizes (median 0.0015 BTC, a heavy tail, 1e-5 BTC steps), 45 % of trades in the same
  millisecond as the one before, runs of one side, sequential ids; as a generic Parquet file
  and as Binance's spot `trades` CSV in a zip (no header, True/False, milliseconds);
- five years of 1-minute klines (2,629,440 candles) as Binance's spot `klines` CSV in a zip.

Each import runs in its own process, pinned to `--cores` CPUs (1 by default: "on one
core"), into a fresh embedded store with every standard timeframe (1s to 1d) and the default
indicators, end to end from the file (interpreter start-up excluded):
- `import_parquet_trades_per_s`, `import_binance_csv_trades_per_s`: trades per second;
- `import_candles_per_s`: klines per second;
- `*_no_indicators_per_s`: the same with `CANDLEGRAPH_INDICATORS` empty, to show what the
  indicators cost;
- `import_parquet_trades_<N>_cores_per_s`, `import_candles_<N>_cores_per_s`: the same imports
  on every CPU this process may use (`--wide-cores`), when that is more than `--cores`: an
  import reads its file ahead and writes the store behind on threads of their own
  (`flows.files.opening.Prefetch`, `flows.write_behind`), which a second core runs beside
  the parsing and the indicator fold;
- `import_peak_rss_mb`: the peak resident memory of the Parquet month's import process;
- `import_store_mb`: the size of the embedded store it leaves (file and write-ahead log);
- `*_read_s` / `*_build_s`: the seconds of the two phases (reading the files; building and
  writing candles, indicators and the trade archive);
- `history_read_*`: reads of the five years once imported (medians): the newest 1,000
  candles (`SqliteStore.candles`) and a year of them as columns (`candles_frame`); the newest
  1,000 candles' indicator values (`SqliteStore.indicators`), those of `rsi_14` alone, a year
  of all of them; `rsi_14` summed over the five years by SQL through the `indicators` view,
  and the close through the `candles` view.

    python bench/import_speed.py [--days N] [--quick] [--cores N] [--wide-cores N] [--data DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

S = 1_000_000_000
MONTH_START_MS = 1_709_251_200_000  # 2024-03-01T00:00:00Z
KLINES_START_MS = 1_546_300_800_000  # 2019-01-01T00:00:00Z
KLINES = 5 * 365 * 1440 + 1440  # five years of minutes, 2020 a leap year


def day_of_trades(rng: np.random.Generator, day: int, count: int, state: dict) -> pl.DataFrame:
    """One day of trades (see the module docstring), continuing `state` (price, next id)."""
    burst = rng.random(count) < 0.45
    gaps = np.where(burst, 0, rng.exponential(1.0, count))
    ms = np.cumsum(gaps)
    ms = (ms / ms[-1] * 86_399_000).astype(np.int64) if ms[-1] > 0 else ms.astype(np.int64)
    ts = MONTH_START_MS + day * 86_400_000 + ms
    steps = rng.normal(0.0, 1.2e-5, count)
    prices = np.round(state["price"] * np.exp(np.cumsum(steps)), 2)
    state["price"] = float(prices[-1])
    sizes = np.maximum(np.round(rng.lognormal(np.log(0.0015), 1.8, count), 5), 0.00001)
    flips = rng.random(count) < 0.2
    sell = (np.cumsum(flips) % 2).astype(bool)
    ids = np.arange(state["id"], state["id"] + count, dtype=np.int64)
    state["id"] += count
    return pl.DataFrame({"id": ids, "price": prices, "qty": sizes,
                         "quote_qty": np.round(prices * sizes, 8), "time": ts,
                         "is_buyer_maker": sell})


def generate_trades(folder: Path, days: int, per_day: int) -> tuple[Path, Path]:
    parquet = folder / f"trades-{days}d.parquet"
    binance = folder / f"BTCUSDT-trades-{days}d.zip"
    if parquet.exists() and binance.exists():
        return parquet, binance
    rng = np.random.default_rng(2024)
    state = {"price": 62_000.0, "id": 3_400_000_000}
    writer: pq.ParquetWriter | None = None
    with zipfile.ZipFile(binance, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open(f"BTCUSDT-trades-{days}d.csv", "w", force_zip64=True) as member:
        for day in range(days):
            frame = day_of_trades(rng, day, per_day, state)
            generic = frame.select(
                pl.col("time").cast(pl.Int64).alias("timestamp"), "price",
                pl.col("qty").alias("amount"),
                pl.when(pl.col("is_buyer_maker")).then(pl.lit("sell")).otherwise(pl.lit("buy"))
                .alias("side"), "id",
            ).to_arrow()
            writer = writer or pq.ParquetWriter(parquet.with_suffix(".partial"), generic.schema)
            writer.write_table(generic)
            text = io.BytesIO()
            frame.with_columns(pl.lit(True).alias("is_best_match")).write_csv(
                text, include_header=False, float_precision=8
            )
            member.write(text.getvalue().replace(b"true", b"True").replace(b"false", b"False"))
    assert writer is not None
    writer.close()
    parquet.with_suffix(".partial").rename(parquet)
    return parquet, binance


def generate_klines(folder: Path) -> Path:
    path = folder / "BTCUSDT-1m-5y.zip"
    if path.exists():
        return path
    rng = np.random.default_rng(1)
    aside = path.with_suffix(".partial")
    last_close = 4_000.0
    with zipfile.ZipFile(aside, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("BTCUSDT-1m-5y.csv", "w", force_zip64=True) as member:
        for first in range(0, KLINES, 100_000):
            count = min(100_000, KLINES - first)
            opened = KLINES_START_MS + np.arange(first, first + count, dtype=np.int64) * 60_000
            close = np.round(last_close * np.exp(np.cumsum(rng.normal(0, 0.0008, count))), 2)
            open_ = np.concatenate([[last_close], close[:-1]])
            last_close = float(close[-1])
            high = np.round(np.maximum(open_, close) * (1 + rng.random(count) * 0.0005), 2)
            low = np.round(np.minimum(open_, close) * (1 - rng.random(count) * 0.0005), 2)
            volume = np.round(rng.lognormal(2, 1, count), 5)
            text = io.BytesIO()
            pl.DataFrame({
                "open_time": opened, "open": open_, "high": high, "low": low, "close": close,
                "volume": volume, "close_time": opened + 59_999,
                "quote_volume": np.round(volume * (high + low) / 2, 8),
                "count": rng.integers(1, 3000, count), "taker_base": np.round(volume / 2, 5),
                "taker_quote": np.round(volume * close / 2, 8),
                "ignore": np.zeros(count, np.int64),
            }).write_csv(text, include_header=False, float_precision=8)
            member.write(text.getvalue())
    aside.rename(path)
    return path


class PhaseTimes:
    """A `flows.progress.Progress` that records how long each phase took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def phase(self, name: str, total: int, unit: str) -> PhaseTimes:
        self._name, self._started = name, time.perf_counter()
        return self

    def advance(self, amount: int) -> None:
        pass

    def close(self) -> None:
        self.seconds[self._name] = time.perf_counter() - self._started


def child(kind: str, path: Path, indicators: str, *, reads: bool = True) -> None:
    """Import one file into a fresh store in this process; print the figures as JSON."""
    from db.sqlite import SqliteStore
    from flows.candle_import import import_candles
    from flows.files.reader import ReadOptions, inspect_file
    from flows.trade_archive import TradeArchive
    from flows.trade_import import Market, import_trades
    from market.indicators import parse_indicators
    from market.timeframes import STANDARD_TIMEFRAMES, parse_timeframes

    market = Market("binance", "BTC-USDT")
    specs = parse_indicators(indicators)
    times = PhaseTimes()
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        data = Path(folder)
        store = SqliteStore(data / "candlegraph.sqlite")
        started, cpu = time.perf_counter(), time.process_time()
        source = inspect_file(path, ReadOptions(symbol=market.symbol))
        if kind == "trades":
            report = import_trades(
                [source], store, market=market, indicators=specs,
                timeframes=parse_timeframes(list(STANDARD_TIMEFRAMES)),
                archive=TradeArchive(data / "archive"), work_dir=data / "work", progress=times,
            )
            rows, candles = report.trades_read, report.candles
        else:
            creport = import_candles([source], store, market=market, indicators=specs,
                                     work_dir=data / "work", progress=times)
            rows, candles = creport.candles_read, creport.candles
        store.close()
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stored = sum(p.stat().st_size for p in data.glob("candlegraph.sqlite*"))
        key = (market.exchange, market.symbol, "1m")
        figures = history_reads(data / "candlegraph.sqlite", key) if kind == "candles" \
            and specs and reads else {}
    print(json.dumps({
        "rows": rows, "candles": candles, "seconds": seconds, "cpu_s": cpu_s,
        "rss_mb": rss_mb, "store_mb": stored / 2**20, "phases": times.seconds, "reads": figures,
    }))


def history_reads(path: Path, key: tuple[str, str, str]) -> dict[str, float]:
    """Reads of the klines' stored indicators, in milliseconds (see the module docstring)."""
    import sqlite3

    from timing import median_ms

    from db.sqlite import SqliteStore

    store = SqliteStore(path)
    year_start = (KLINES_START_MS + 2 * 365 * 86_400_000) * 1_000_000
    year_end = year_start + 365 * 86_400 * S

    figures = {
        "candles_newest_1000_ms": median_ms(lambda: store.candles(*key), 20),
        "candles_year_ms": median_ms(lambda: store.candles_frame(
            *key, start_ns=year_start, end_ns=year_end), 3),
        "newest_1000_ms": median_ms(lambda: store.indicators(*key), 20),
        "one_indicator_newest_1000_ms": median_ms(
            lambda: store.indicators(*key, ["rsi_14"]), 20),
        "year_ms": median_ms(lambda: store.indicators(
            *key, start_ns=year_start, end_ns=year_end, limit=10**7), 3),
    }
    store.close()
    conn = sqlite3.connect(path)
    figures["view_sum_one_indicator_ms"] = median_ms(lambda: conn.execute(
        "SELECT sum(value) FROM indicators WHERE name = 'rsi_14'").fetchone(), 1)
    figures["view_sum_close_ms"] = median_ms(lambda: conn.execute(
        "SELECT sum(close) FROM candles").fetchone(), 1)
    conn.close()
    return figures


def measure(
    kind: str, path: Path, cores: int, indicators: str | None = None, *, reads: bool = True
) -> dict:
    env = dict(os.environ, POLARS_MAX_THREADS=str(cores))
    command = [sys.executable, __file__, "--child", kind, str(path)]
    if indicators is not None:
        command += ["--indicators", indicators]
    if not reads:
        command.append("--no-reads")
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    out = subprocess.run(
        command, env=env, check=True, capture_output=True, text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(name: str, unit_rows: str, result: dict) -> None:
    rate = result["rows"] / result["seconds"]
    print(f"{name}_per_s: {rate:,.0f} {unit_rows}/s")
    print(f"{name}_seconds: {result['seconds']:.1f} s ({result['rows']:,} {unit_rows},"
          f" {result['candles']:,} candles, {result['cpu_s']:.1f} s CPU)")
    phases = result["phases"]
    read = phases.get("reading", 0.0)
    build = phases.get("building candles", phases.get("writing candles", 0.0))
    print(f"{name}_read_s: {read:.1f} s")
    print(f"{name}_build_s: {build:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of trades (1M a day)")
    parser.add_argument("--per-day", type=int, default=1_000_000, help="trades a day")
    parser.add_argument("--quick", action="store_true", help="3 days, and no klines")
    parser.add_argument("--cores", type=int, default=1, help="CPUs each import may use")
    parser.add_argument("--wide-cores", type=int, default=None,
                        help="CPUs for the runs on more cores (default: all this process may use)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/candlegraph-bench-import"))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--indicators", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-reads", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from market.indicators import DEFAULT_INDICATORS_TEXT

        indicators = DEFAULT_INDICATORS_TEXT if args.indicators is None else args.indicators
        child(args.child[0], Path(args.child[1]), indicators, reads=not args.no_reads)
        return
    days = 3 if args.quick else args.days
    args.data.mkdir(parents=True, exist_ok=True)
    parquet, binance = generate_trades(args.data, days, args.per_day)
    print(f"load_average: {os.getloadavg()[0]:.2f} (1 min, before the runs)")
    result = measure("trades", parquet, args.cores)
    report("import_parquet_trades", "trades", result)
    print(f"import_peak_rss_mb: {result['rss_mb']:,.0f} MB")
    print(f"import_store_mb: {result['store_mb']:,.0f} MB")
    report("import_binance_csv_trades", "trades", measure("trades", binance, args.cores))
    report("import_parquet_trades_no_indicators", "trades",
           measure("trades", parquet, args.cores, indicators=""))
    wide = len(os.sched_getaffinity(0)) if args.wide_cores is None else args.wide_cores
    if wide > args.cores:
        report(f"import_parquet_trades_{wide}_cores", "trades",
               measure("trades", parquet, wide))
    if not args.quick:
        klines = generate_klines(args.data)
        result = measure("candles", klines, args.cores)
        report("import_candles", "candles", result)
        for name, ms in result["reads"].items():
            print(f"history_read_{name}: {ms:,.1f} ms")
        report("import_candles_no_indicators", "candles",
               measure("candles", klines, args.cores, indicators=""))
        if wide > args.cores:
            report(f"import_candles_{wide}_cores", "candles",
                   measure("candles", klines, wide, reads=False))


if __name__ == "__main__":
    main()
