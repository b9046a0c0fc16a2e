"""The straightforward batch aggregation that streaming candles must equal, bit for bit."""

from __future__ import annotations

from collections.abc import Sequence

from market.messages import Candle, Trade
from market.timeframes import Timeframe


def batch_candles(
    trades: Sequence[Trade], timeframes: Sequence[Timeframe], lateness_ns: int
) -> dict[tuple[str, str, int], Candle]:
    """The straightforward batch aggregation: accept by the same rules, group, fold in order."""
    accepted: list[Trade] = []
    seen: set[tuple[str, str, str]] = set()
    high_water = 0
    for t in trades:
        if t.ts < high_water - lateness_ns or (t.exchange, t.symbol, t.trade_id) in seen:
            continue
        seen.add((t.exchange, t.symbol, t.trade_id))
        accepted.append(t)
        high_water = max(high_water, t.ts)
    groups: dict[tuple[str, str, int], list[Trade]] = {}
    for tf in timeframes:
        for t in accepted:
            groups.setdefault((t.symbol, tf.name, t.ts - t.ts % tf.ns), []).append(t)
    out = {}
    for (symbol, tf_name, ts), group in groups.items():
        volume = notional = 0.0
        for t in group:  # an explicit loop: Python 3.12's sum() of floats is compensated
            volume += t.size
            notional += t.price * t.size
        out[(symbol, tf_name, ts)] = Candle(
            group[0].exchange, symbol, tf_name, ts, group[0].price, max(t.price for t in group),
            min(t.price for t in group), group[-1].price, volume, len(group),
            notional / volume if volume > 0 else group[-1].price, True,
        )
    return out
