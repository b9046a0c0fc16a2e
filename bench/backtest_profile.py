"""Where a backtest's time goes: NautilusTrader set up as its examples do, against our setup.

Both run EMA cross 50/200 (fixed quantity) on the same 1-minute candles, each in a fresh
process sampled by py-spy, and print:

- `profile_before_bars_per_s` / `profile_after_bars_per_s`: engine throughput of each setup;
- the frames where each spends its time, as `# ` comment lines: self time (the frame on top
  of the stack) and inclusive time (anywhere on the stack), in percent of the engine phase's
  samples. py-spy sees Python frames: the engine's own Cython shows as the Python code it
  calls (the strategy, pandas, the analyzer). `--native` would show the Cython too, but it
  slowed the engine more than tenfold here and its symbols are stripped.

"Before" is `BacktestEngineConfig()` as in NautilusTrader's examples: INFO logging, the
post-run analysis, NETTING, the analyzer's `record_trade`, all bars in one `run()` and the
collector running. "After" is `strategies.runner.run_prepared` (see its docstring and
ARCHITECTURE.md, "Backtests", for each lever).

    python bench/backtest_profile.py [--bars N] [--top N]

`bench/backtest_speed.py` runs this too, on 20,000 bars. Without py-spy (or where ptrace is
not allowed) only the throughput lines are printed.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nautilus_trader.trading.strategy import Strategy

    from strategies.runner import PreparedMarket
    from strategies.spec import BacktestSpec

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]


def run_child(kind: str, store_path: Path, out: Path, fast: int, slow: int) -> None:
    """One backtest in this process; its figures go to `out` (stdout gets the engine's log)."""
    import warnings

    from backtest_speed import EXCHANGE, SYMBOL, spec_for
    from pandas.errors import Pandas4Warning

    from db.sqlite import SqliteStore
    from strategies.runner import prepare_market, strategy_for

    warnings.filterwarnings("ignore", category=Pandas4Warning)  # raised inside the engine
    store = SqliteStore(store_path)
    candles = store.candles_frame(EXCHANGE, SYMBOL, "1m", 0, 2**62)
    store.close()
    spec = spec_for("1m", {"fast": fast, "slow": slow})
    market = prepare_market(candles, spec)
    strategy = strategy_for(market, spec)
    started = time.perf_counter()
    fills = engine_phase(kind, market, spec, strategy)
    elapsed = time.perf_counter() - started
    out.write_text(json.dumps({"bars": len(market.bars), "engine_s": elapsed, "fills": fills}))


def engine_phase(kind: str, market: PreparedMarket, spec: BacktestSpec, strategy: Strategy) -> int:
    """The part that is timed and tabled (its frame marks the samples that count); returns
    the number of fills."""
    from decimal import Decimal

    from nautilus_trader.backtest.config import BacktestEngineConfig
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.backtest.models import BestPriceFillModel
    from nautilus_trader.model.enums import AccountType, OmsType
    from nautilus_trader.model.objects import Money

    from strategies.instrument import VENUE
    from strategies.runner import run_prepared

    if kind == "after":
        return len(run_prepared(market, spec, strategy).fills)
    else:
        engine = BacktestEngine(config=BacktestEngineConfig())
        engine.add_venue(
            venue=VENUE,
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            starting_balances=[Money(Decimal(repr(spec.starting_balance)),
                                     market.instrument.quote_currency)],
            fill_model=BestPriceFillModel(),
        )
        engine.add_instrument(market.instrument)
        engine.add_strategy(strategy)
        engine.add_data(market.bars)
        engine.run()
        fills = len(engine.cache.orders_closed())  # market orders: each closed one filled
        engine.dispose()
        return fills


def frames_table(raw: Path, top: int) -> list[str]:
    """py-spy's raw (collapsed) stacks as `# ` lines: top frames by self and inclusive time."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short(f) for f in stack.split(";")]
        marks = [i for i, f in enumerate(frames) if f.startswith("engine_phase (")]
        if not marks:
            continue  # start-up, reading the store, converting
        frames = frames[marks[0] + 1:] or frames[marks[0]:]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return ["#   no samples in the engine"]
    lines = [f"#   {total} samples of the engine phase; self time:"]
    lines += [f"#     {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("#   inclusive time (below the engine's entry points):")
    deep = [(name, n) for name, n in inclusive.most_common() if n < 0.95 * total]
    lines += [f"#     {100 * n / total:5.1f}%  {name}" for name, n in deep[:top]]
    return lines


def _short(frame: str) -> str:
    """`name (path:line)` → `name (file)`; the Python frames that call into the engine are
    marked, since time there is the engine's compiled code, which py-spy does not see."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    if name in _ENGINE_CALLERS:
        return f"{name} ({Path(where).name}): inside the engine's Cython and Rust"
    return f"{name[:90]} ({Path(where).name})" if where else name[:90]


_ENGINE_CALLERS = {"engine_phase", "_run_in_batches"}


def profile(store_path: Path, *, top: int = 8, fast: int = 10, slow: int = 30) -> list[str]:
    """Both setups' figures and frame tables, as printable lines."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    lines: list[str] = []
    for kind in ("before", "after"):
        with tempfile.TemporaryDirectory(prefix="backtest-profile-") as directory:
            out, raw = Path(directory) / "out.json", Path(directory) / "stacks.txt"
            child = [sys.executable, __file__, "--child", kind, "--store", str(store_path),
                     "--out", str(out), "--fast", str(fast), "--slow", str(slow)]
            sampled = False
            if py_spy is not None:
                command = [py_spy, "record", "--nonblocking", "--rate", "100", "--format", "raw",
                           "--output", str(raw), "--", *child]
                done = subprocess.run(command, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, check=False)
                sampled = done.returncode == 0 and raw.exists()
            if not out.exists():  # no py-spy, or it could not trace: run unsampled
                subprocess.run(child, stdout=subprocess.DEVNULL, check=True)
            figures = json.loads(out.read_text())
            lines.append(
                f"profile_{kind}_bars_per_s: {figures['bars'] / figures['engine_s']:,.0f} bars/s"
            )
            if sampled:
                lines.append(f"# {kind}: py-spy, {figures['bars']:,} bars,"
                             f" EMA cross {fast}/{slow}, {figures['fills']:,} fills")
                lines += frames_table(raw, top)
            else:
                lines.append(f"# {kind}: not sampled (py-spy missing or not allowed to trace)")
    return lines


def write_candles(store_path: Path, bars: int) -> None:
    from backtest_speed import random_walk

    from db.sqlite import SqliteStore

    store = SqliteStore(store_path)
    store.upsert_candles(random_walk(bars, "1m", seed=1, sigma=0.0008))
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--fast", type=int, default=10, help="EMA cross fast period")
    parser.add_argument("--slow", type=int, default=30, help="EMA cross slow period")
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.store, args.out, args.fast, args.slow)
        return
    with tempfile.TemporaryDirectory(prefix="candlegraph-bench-") as directory:
        store_path = Path(directory) / "candles.db"
        write_candles(store_path, args.bars)
        for line in profile(store_path, top=args.top, fast=args.fast, slow=args.slow):
            print(line)


if __name__ == "__main__":
    main()
