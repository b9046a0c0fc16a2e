"""The accounting of a run, from its fills and bar closes: trades and the equity curve.

Pure polars, no engine: the runner hands in the fills it read from NautilusTrader, and tests
hand in fills made by hand. Cash moves by -signed quantity × price - fee at each fill, and
equity at a bar close is cash + position × close (marked to market).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from market.arrays import Floats, Ints
from strategies.result import EquityCurve, Fill, Trade

FILL_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "position_id": pl.String(),
    "side": pl.String(),
    "price": pl.Float64(),
    "quantity": pl.Float64(),
    "fee": pl.Float64(),
    "liquidity": pl.String(),
}

_SIGNED = pl.when(pl.col("side") == "BUY").then(pl.col("quantity")).otherwise(-pl.col("quantity"))


def fills_frame(fills: Sequence[Fill]) -> pl.DataFrame:
    """Fills as columns, in the order given (the engine's order)."""
    columns: dict[str, list[object]] = {name: [] for name in FILL_SCHEMA}
    for fill in fills:
        for name, values in columns.items():
            values.append(getattr(fill, name))
    return pl.DataFrame(columns, schema=FILL_SCHEMA)


def equity_frame(
    bar_ts: Ints,
    closes: Floats,
    fills: pl.DataFrame,
    *,
    starting_equity: float,
    size_precision: int,
) -> pl.DataFrame:
    """Columns ts, close, position, equity: one row per bar close.

    A fill stamped at a bar's close counts at that close. `position` is rounded to the size
    precision so that buying 0.1 + 0.2 and selling 0.3 leaves exactly 0, not 5e-17.
    """
    flows = (
        fills.lazy()
        .select(
            "ts",
            _SIGNED.alias("signed"),
            (-_SIGNED * pl.col("price") - pl.col("fee")).alias("cash"),
        )
        .group_by("ts")
        .agg(pl.col("signed").sum(), pl.col("cash").sum())
        .sort("ts")
        .select(
            "ts",
            pl.col("signed").cum_sum().round(size_precision).alias("position"),
            pl.col("cash").cum_sum().alias("cash"),
        )
    )
    bars = pl.LazyFrame(
        {"ts": bar_ts.astype(np.int64), "close": closes.astype(np.float64)},
        schema={"ts": pl.Int64(), "close": pl.Float64()},
    )
    return (
        bars.join_asof(flows, on="ts", strategy="backward")
        .with_columns(pl.col("position").fill_null(0.0), pl.col("cash").fill_null(0.0))
        .select(
            "ts",
            "close",
            "position",
            (starting_equity + pl.col("cash") + pl.col("position") * pl.col("close")).alias(
                "equity"
            ),
        )
        .collect()
    )


def trades_frame(fills: pl.DataFrame, *, size_precision: int) -> pl.DataFrame:
    """One row per closed position (net quantity back to zero), ordered by exit time.

    The side is the side of the position's first fill; the entry legs are the fills on that
    side and the exit legs the others.
    """
    opening = pl.col("side") == pl.col("side").first()
    notional = pl.col("quantity") * pl.col("price")
    half_tick = 0.5 * 10.0**-size_precision
    return (
        fills.lazy()
        .group_by("position_id", maintain_order=True)
        .agg(
            pl.when(pl.col("side").first() == "BUY")
            .then(pl.lit("LONG"))
            .otherwise(pl.lit("SHORT"))
            .alias("side"),
            pl.col("ts").min().alias("entry_ts"),
            pl.col("ts").max().alias("exit_ts"),
            _SIGNED.sum().alias("net_quantity"),
            pl.col("quantity").filter(opening).sum().alias("quantity"),
            notional.filter(opening).sum().alias("entry_notional"),
            pl.col("quantity").filter(~opening).sum().alias("exit_quantity"),
            notional.filter(~opening).sum().alias("exit_notional"),
            (-_SIGNED * pl.col("price")).sum().alias("gross_pnl"),
            pl.col("fee").sum().alias("fees"),
        )
        .filter(pl.col("net_quantity").abs() < half_tick)
        .select(
            "position_id",
            "side",
            "entry_ts",
            "exit_ts",
            (pl.col("entry_notional") / pl.col("quantity")).alias("entry_price"),
            (pl.col("exit_notional") / pl.col("exit_quantity")).alias("exit_price"),
            "quantity",
            (pl.col("gross_pnl") - pl.col("fees")).alias("pnl"),
            "fees",
            ((pl.col("gross_pnl") - pl.col("fees")) / pl.col("entry_notional")).alias("net_return"),
        )
        .sort("exit_ts", "entry_ts", maintain_order=True)
        .collect()
    )


def trades_of(frame: pl.DataFrame) -> list[Trade]:
    """`trades_frame` rows as `Trade` structs."""
    return [Trade(**row) for row in frame.iter_rows(named=True)]


def equity_curve_of(frame: pl.DataFrame) -> EquityCurve:
    """`equity_frame` columns as an `EquityCurve`."""
    return EquityCurve(
        ts=frame["ts"].to_list(),
        equity=frame["equity"].to_list(),
        position=frame["position"].to_list(),
    )
