"""Walk-forward analysis: what one is (its folds in time), what it yields, and the stitching.

For each fold (`strategies.folds`), the parameters are searched on the in-sample (training)
window, by a grid or a search exactly as a sweep does, and the best by `rank_by` is run on the
following out-of-sample (test) window. The result (`WalkForwardResult`) holds each fold's
windows, chosen params and both metrics, the stitched out-of-sample equity curve's metrics, and
the walk-forward efficiency.

Stitching: every out-of-sample run starts flat with the spec's starting balance, so the
stitched curve chains them as if the capital were carried over: fold k's equity (and its
trades' PnL and fees) is scaled by the stitched equity at the end of fold k-1 over the starting
balance. A position still open when a test window ends is marked to market at its last close,
as in any run, and the next fold starts flat. Indicators warm up inside each test window.
The stitched metrics come from `strategies.metrics.compute_metrics`, like any run's.

Walk-forward efficiency = the stitched out-of-sample CAGR over the mean in-sample CAGR of the
chosen params; None when that mean is not above zero (a ratio to a loss says nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import polars as pl

from market.arrays import Ints
from strategies.errors import InvalidRequest
from strategies.folds import Fold
from strategies.metrics import compute_metrics
from strategies.registry import ParamValue
from strategies.result import Metrics
from strategies.search import Search
from strategies.spec import BacktestSpec


class FoldWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A fold in time: candles with train_start_ns <= ts < train_end_ns train, and those
    with test_start_ns <= ts < test_end_ns test (train_end_ns <= test_start_ns)."""

    index: int
    train_start_ns: int
    train_end_ns: int
    test_start_ns: int
    test_end_ns: int
    train_bars: int
    test_bars: int


class StoredWalkForward(msgspec.Struct, frozen=True, kw_only=True):
    """What a walk-forward's record holds as its spec."""

    base: BacktestSpec
    rank_by: str
    grid: dict[str, list[ParamValue]] | None = None
    search: Search | None = None
    anchored: bool
    folds: list[FoldWindow]


class FoldResult(msgspec.Struct, frozen=True, kw_only=True):
    """One fold as it ended: its in-sample sweep, the params chosen, its out-of-sample run."""

    window: FoldWindow
    sweep_id: str
    test_id: str | None = None
    params: dict[str, ParamValue] | None = None
    in_sample: Metrics | None = None
    out_of_sample: Metrics | None = None
    status: str
    error: str | None = None


class WalkForwardResult(msgspec.Struct, frozen=True, kw_only=True):
    """A walk-forward's result, stored as its record's `metrics_json`."""

    rank_by: str
    folds: list[FoldResult]
    metrics: Metrics | None = None
    efficiency: float | None = None


def fold_windows(ts: Ints, timeframe_ns: int, folds: Sequence[Fold]) -> list[FoldWindow]:
    """The folds' bar windows as times, over candles stamped `ts` (bucket starts, oldest
    first). A window ends at its last candle's end."""
    def end(index: int) -> int:
        return int(ts[index - 1]) + timeframe_ns

    return [
        FoldWindow(
            index=fold.index,
            train_start_ns=int(ts[fold.train.start]), train_end_ns=end(fold.train.end),
            test_start_ns=int(ts[fold.test.start]), test_end_ns=end(fold.test.end),
            train_bars=fold.train.bars, test_bars=fold.test.bars,
        )
        for fold in folds
    ]


def stored_json(stored: StoredWalkForward) -> str:
    """The record's spec: the base spec's fields with the walk-forward's own beside them."""
    own = msgspec.to_builtins(stored)
    base = own.pop("base")
    return msgspec.json.encode({**base, **own}).decode()


def read_walkforward(spec_json: str) -> StoredWalkForward:
    own = msgspec.json.decode(spec_json)
    keys = ("rank_by", "grid", "search", "anchored", "folds")
    how = {key: own.pop(key) for key in keys if key in own}
    return msgspec.convert({**how, "base": own}, StoredWalkForward)


class Stitched(msgspec.Struct, frozen=True, kw_only=True):
    equity: pl.DataFrame
    trades: pl.DataFrame
    metrics: Metrics


def stitch(
    curves: Sequence[pl.DataFrame],
    trades: Sequence[pl.DataFrame],
    fees: Sequence[float],
    closes: pl.DataFrame,
    *,
    starting_equity: float,
    start_ns: int,
    timeframe_ns: int,
) -> Stitched:
    """The folds' out-of-sample runs joined (see the module docstring). `curves` (ts,
    equity, position) and `trades` are each fold's as stored, in fold order; `fees` each
    fold's total fees; `closes` the candles (ts = bucket start, close) over the test windows."""
    if not curves:
        raise InvalidRequest("folds", "no fold has an out-of-sample run to stitch")
    scale = 1.0
    parts, trade_parts, fee_total = [], [], 0.0
    for curve, fold_trades, fold_fees in zip(curves, trades, fees, strict=True):
        parts.append(curve.with_columns(
            pl.col("equity") * scale, pl.col("position") * scale
        ))
        trade_parts.append(fold_trades.with_columns(pl.col("pnl") * scale, pl.col("fees") * scale))
        fee_total += fold_fees * scale
        scale *= float(curve["equity"][-1]) / starting_equity
    equity = pl.concat(parts)
    joined_trades = pl.concat(trade_parts)
    with_close = equity.join(
        closes.select(pl.col("ts") + timeframe_ns, "close"), on="ts", how="left"
    )
    metrics = compute_metrics(
        with_close, joined_trades, pl.DataFrame({"fee": [fee_total]}),
        starting_equity=starting_equity, start_ns=start_ns, timeframe_ns=timeframe_ns,
    )
    return Stitched(equity=equity, trades=joined_trades, metrics=metrics)


def efficiency(out_of_sample: Metrics, in_sample: Sequence[Metrics]) -> float | None:
    """Stitched out-of-sample CAGR over the mean in-sample CAGR (see the module docstring)."""
    cagrs = [metrics.cagr for metrics in in_sample]
    if not cagrs or out_of_sample.cagr is None or any(cagr is None for cagr in cagrs):
        return None
    mean = sum(cagrs) / len(cagrs)  # type: ignore[arg-type]
    return out_of_sample.cagr / mean if mean > 0.0 else None
