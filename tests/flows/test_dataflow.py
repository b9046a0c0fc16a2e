"""The dataflow's wiring on Bytewax's testing source and sink: no network needed."""

from __future__ import annotations

from bytewax.testing import TestingSink, TestingSource, run_main

from flows.dataflow import build_flow
from flows.jetstream_source import RawMessage
from flows.outputs import FlowOutput
from market.messages import Trade, encode
from market.timeframes import parse_timeframes

S = 1_000_000_000
T0 = 1_700_000_040 * S


def run(messages: list[RawMessage]) -> list[FlowOutput]:
    out: list[FlowOutput] = []
    flow = build_flow(
        TestingSource(messages),
        TestingSink(out),
        timeframes=parse_timeframes("1s,1m"),
        now_ns=lambda: T0 + 3600 * S,
        flush_at_eof=True,
    )
    run_main(flow)
    return out


def trades_message(*trades: Trade, reply: str) -> RawMessage:
    t = trades[0]
    return RawMessage(f"trades.{t.exchange}.{t.symbol}", encode(list(trades)), reply)


def test_every_message_is_acked_once_with_its_effects() -> None:
    btc = [Trade("sim", "BTC-USDT", T0 + i * S // 2, 100.0 + i, 1.0, "buy", str(i))
           for i in range(4)]
    out = run([
        trades_message(*btc[:2], reply="ack.1"),
        trades_message(*btc[2:], reply="ack.2"),
        RawMessage("trades.sim.BTC-USDT", b"not json", "ack.3"),
        RawMessage("nonsense", encode(btc[0]), "ack.4"),
    ])
    acks = sorted(a for item in out for a in item.acks)
    assert acks == ["ack.1", "ack.2", "ack.3", "ack.4"]
    letters = sorted((d.reason, d.subject) for item in out for d in item.dead_letters)
    assert letters == [("bad_subject", "nonsense"), ("undecodable", "trades.sim.BTC-USDT")]
    final = {(c.timeframe, c.ts): c for item in out for c in item.candles}
    assert final[("1m", T0)].trades == 4 and final[("1m", T0)].closed
    assert [final[("1s", T0 + i * S)].close for i in range(2)] == [101.0, 103.0]


def test_a_trade_for_another_symbol_than_its_subject_is_dead_lettered() -> None:
    eth = Trade("sim", "ETH-USDT", T0, 10.0, 1.0, "sell", "1")
    out = run([RawMessage("trades.sim.BTC-USDT", encode([eth]), "ack.1")])
    letters = [d.reason for item in out for d in item.dead_letters]
    assert letters == ["subject_mismatch"]
    assert [c for item in out for c in item.candles] == []


def test_late_trades_are_dead_lettered_as_late() -> None:
    on_time = Trade("sim", "BTC-USDT", T0 + 60 * S, 10.0, 1.0, "buy", "1")
    late = Trade("sim", "BTC-USDT", T0, 9.0, 1.0, "buy", "2")
    out = run([trades_message(on_time, reply="a"), trades_message(late, reply="b")])
    assert [d.reason for item in out for d in item.dead_letters] == ["late"]
