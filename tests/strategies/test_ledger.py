"""Trades and the equity curve computed from hand-made fills, without the engine."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from strategies.ledger import equity_frame, fills_frame, trades_frame
from strategies.result import Fill

MINUTE = 60_000_000_000


def fill(
    ts: int, position: str, side: Literal["BUY", "SELL"], price: float, quantity: float, fee: float
) -> Fill:
    return Fill(
        ts=ts,
        position_id=position,
        side=side,
        price=price,
        quantity=quantity,
        fee=fee,
        liquidity="TAKER",
    )


FILLS = [
    fill(1 * MINUTE, "P1", "BUY", 10.0, 0.1, 0.01),
    fill(1 * MINUTE, "P1", "BUY", 11.0, 0.2, 0.02),
    fill(3 * MINUTE, "P1", "SELL", 12.0, 0.3, 0.03),
    fill(4 * MINUTE, "P2", "SELL", 12.0, 1.0, 0.05),  # a short, still open at the end
]


def test_a_position_scaled_into_and_closed_becomes_one_trade() -> None:
    trades = trades_frame(fills_frame(FILLS), size_precision=2).to_dicts()

    gross = 0.3 * 12.0 - (0.1 * 10.0 + 0.2 * 11.0)
    assert trades == [
        {
            "position_id": "P1",
            "side": "LONG",
            "entry_ts": MINUTE,
            "exit_ts": 3 * MINUTE,
            "entry_price": pytest.approx((0.1 * 10.0 + 0.2 * 11.0) / 0.3, rel=1e-12),
            "exit_price": 12.0,
            "quantity": pytest.approx(0.3, rel=1e-12),
            "pnl": pytest.approx(gross - 0.06, rel=1e-12),
            "fees": pytest.approx(0.06, rel=1e-12),
            "net_return": pytest.approx((gross - 0.06) / 3.2, rel=1e-12),
        }
    ]


def test_equity_marks_the_position_at_each_close_and_rounds_it_flat() -> None:
    bar_ts = np.array([1, 2, 3, 4, 5], dtype=np.int64) * MINUTE
    closes = np.array([10.5, 11.5, 12.0, 12.0, 11.0])

    frame = equity_frame(
        bar_ts, closes, fills_frame(FILLS), starting_equity=100.0, size_precision=2
    )

    cash_1 = 100.0 - 1.0 - 2.2 - 0.03
    cash_3 = cash_1 + 3.6 - 0.03
    cash_4 = cash_3 + 12.0 - 0.05
    assert frame["position"].to_list() == [0.3, 0.3, 0.0, -1.0, -1.0]
    assert frame["equity"].to_list() == pytest.approx(
        [cash_1 + 0.3 * 10.5, cash_1 + 0.3 * 11.5, cash_3, cash_4 - 12.0, cash_4 - 11.0],
        rel=1e-12,
    )


def test_no_fills_leave_equity_at_the_starting_balance() -> None:
    bar_ts = np.array([1, 2], dtype=np.int64) * MINUTE

    frame = equity_frame(
        bar_ts, np.array([1.0, 2.0]), fills_frame([]), starting_equity=50.0, size_precision=3
    )

    assert frame["equity"].to_list() == [50.0, 50.0]
    assert trades_frame(fills_frame([]), size_precision=3).height == 0


def test_a_short_round_trip_gains_what_the_price_fell_less_fees() -> None:
    fills = fills_frame([
        fill(1 * MINUTE, "S1", "SELL", 12.0, 2.0, 0.1),
        fill(2 * MINUTE, "S1", "BUY", 10.0, 2.0, 0.1),
        fill(2 * MINUTE, "L1", "BUY", 10.0, 1.0, 0.05),  # reversed to long at the same close
    ])

    [trade] = trades_frame(fills, size_precision=2).to_dicts()
    frame = equity_frame(
        np.array([1, 2], dtype=np.int64) * MINUTE, np.array([11.0, 10.0]), fills,
        starting_equity=100.0, size_precision=2,
    )

    assert (trade["side"], trade["entry_price"], trade["exit_price"]) == ("SHORT", 12.0, 10.0)
    assert trade["pnl"] == pytest.approx(2.0 * 2.0 - 0.2, rel=1e-12)
    assert trade["net_return"] == pytest.approx(3.8 / 24.0, rel=1e-12)
    assert frame["position"].to_list() == [-2.0, 1.0]
    assert frame["equity"].to_list() == pytest.approx(
        [100.0 + 24.0 - 0.1 - 2.0 * 11.0, 100.0 + 3.8 - 0.05], rel=1e-12
    )
