"""The dataflow's wiring on Bytewax's testing source and sink: no network needed."""

from __future__ import annotations

import dataclasses
import gzip
from datetime import timedelta
from pathlib import Path

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.candle_logic import CandleLogic, FlowOptions
from flows.dataflow import build_flow
from flows.jetstream_source import RawMessage
from flows.outputs import FlowOutput
from market.indicators import DEFAULT_INDICATORS, IndicatorStateError, parse_indicators
from market.messages import Candle, Trade, encode
from market.spike_filter import SpikeFilter
from market.timeframes import parse_timeframes

S = 1_000_000_000
T0 = 1_700_000_040 * S
DATA = Path(__file__).with_name("data")


def run(messages: list[RawMessage], **options: object) -> list[FlowOutput]:
    out: list[FlowOutput] = []
    flow = build_flow(
        TestingSource(messages, batch_size=options.pop("batch_size", 1)),  # type: ignore[arg-type]  # test overrides: each a real option
        TestingSink(out),
        timeframes=parse_timeframes(options.pop("timeframes", "1s,1m")),  # type: ignore[arg-type]  # test overrides: each a real option
        now_ns=lambda: T0 + 3600 * S,
        flush_at_eof=True,
        **options,  # type: ignore[arg-type]  # test overrides: each a real option
    )
    run_main(flow)
    return out


def trades_message(*trades: Trade, reply: str) -> RawMessage:
    t = trades[0]
    return RawMessage(f"trades.{t.exchange}.{t.symbol}", encode(list(trades)), reply)


def stored(out: list[FlowOutput]) -> dict[tuple[str, int], Candle]:
    return {(c.timeframe, c.ts): c for item in out for c in item.candles}


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
    final = stored(out)
    assert final[("1m", T0)].trades == 4 and final[("1m", T0)].closed
    assert [final[("1s", T0 + i * S)].close for i in range(2)] == [101.0, 103.0]


def test_a_trade_for_another_symbol_than_its_subject_is_dead_lettered() -> None:
    eth = Trade("sim", "ETH-USDT", T0, 10.0, 1.0, "sell", "1")
    out = run([RawMessage("trades.sim.BTC-USDT", encode([eth]), "ack.1")])
    letters = [d.reason for item in out for d in item.dead_letters]
    assert letters == ["subject_mismatch"]
    assert [c for item in out for c in item.updates] == []


def test_late_trades_are_dead_lettered_as_late() -> None:
    on_time = Trade("sim", "BTC-USDT", T0 + 60 * S, 10.0, 1.0, "buy", "1")
    late = Trade("sim", "BTC-USDT", T0, 9.0, 1.0, "buy", "2")
    out = run([trades_message(on_time, reply="a"), trades_message(late, reply="b")])
    assert [d.reason for item in out for d in item.dead_letters] == ["late"]
    assert sum(item.counts.get("dead_letters.late", 0) for item in out) == 1


def test_duplicates_are_dropped_and_counted() -> None:
    t = Trade("sim", "BTC-USDT", T0, 10.0, 1.0, "buy", "7")
    out = run([trades_message(t, reply="a"), trades_message(t, reply="b")])
    assert sum(item.counts.get("duplicates", 0) for item in out) == 1
    assert stored(out)[("1s", T0)].trades == 1


def test_forming_updates_are_throttled_but_closed_candles_always_published() -> None:
    # 50 messages in one second of event time, all processed at the same instant.
    trades = [Trade("sim", "BTC-USDT", T0 + i * S // 50, 100.0 + i, 1.0, "buy", str(i))
              for i in range(50)]
    out = run([trades_message(t, reply=str(i)) for i, t in enumerate(trades)],
              timeframes="1m", indicators=())
    published = [c for item in out for c in item.updates]
    forming = [c for c in published if not c.closed]
    closed = [c for c in published if c.closed]
    assert len(forming) == 1 and forming[0].trades == 1  # the clock never moved 250 ms on
    assert [(c.trades, c.close) for c in closed] == [(50, 149.0)]


def test_final_candles_carry_their_indicators_and_store_them() -> None:
    specs = parse_indicators("sma:3,obv")
    trades = [Trade("sim", "BTC-USDT", T0 + i * S, 100.0 + i, 1.0, "buy", str(i))
              for i in range(10)]
    out = run([trades_message(t, reply=str(i)) for i, t in enumerate(trades)],
              timeframes="1s", indicators=specs, allowed_lateness=timedelta(0))
    points = {
        (row.ts, name): value
        for item in out for row in item.indicators for name, value in row.values.items()
    }
    # Closes 100..109: the SMA of three is the middle one, from the third candle on.
    assert points[(T0 + 2 * S, "sma_3")] == pytest.approx(101.0)
    assert points[(T0 + 9 * S, "sma_3")] == pytest.approx(108.0)
    assert (T0 + S, "sma_3") not in points  # warm-up values are not stored
    assert points[(T0 + 9 * S, "obv")] == 9.0
    with_indicators = [c for item in out for c in item.updates if c.indicators is not None]
    assert {c.ts for c in with_indicators} == {T0 + i * S for i in range(10)}
    last = next(c for c in with_indicators if c.ts == T0 + 9 * S)
    assert last.closed and last.indicators == {"sma_3": pytest.approx(108.0), "obv": 9.0}


def test_spikes_are_dead_lettered_when_the_filter_is_on() -> None:
    prices = [100.0 + 0.01 * (i % 3) for i in range(40)] + [150.0] + [100.01] * 5
    trades = [Trade("sim", "BTC-USDT", T0 + i * S // 10, p, 1.0, "buy", str(i))
              for i, p in enumerate(prices)]
    out = run([trades_message(*trades, reply="a")], timeframes="1m",
              spike_filter=SpikeFilter(sigmas=8, warmup=20))
    assert [d.reason for item in out for d in item.dead_letters] == ["spike"]
    assert stored(out)[("1m", T0)].high < 101.0


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_candles_do_not_depend_on_how_messages_are_batched(batch_size: int) -> None:
    trades = [Trade("sim", sym, T0 + i * 37_000_000, 100.0 + (i * 7919 % 101) / 10, 0.5,
                    "sell", str(i)) for i in range(2000) for sym in ("BTC-USDT", "ETH-USDT")]
    messages = [trades_message(*trades[i:i + 10], reply=str(i)) for i in range(0, 4000, 10)]
    reference = stored(run(messages, batch_size=1000, indicators=()))
    assert stored(run(messages, batch_size=batch_size, indicators=())) == reference


def options(**changes: object) -> FlowOptions:
    base = FlowOptions(
        timeframes=parse_timeframes("1s,1m"), allowed_lateness_ns=5 * S,
        indicators=parse_indicators("sma:3"), forming_interval_ns=0,
        spike_filter=SpikeFilter(), max_future_ns=60 * S, flush_at_eof=False,
        now_ns=lambda: T0 + 3600 * S,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]  # test overrides: each a real field


def test_a_snapshot_resumes_only_with_the_timeframes_it_was_taken_with() -> None:
    logic = CandleLogic(options(), None)
    logic.on_batch([trades_message(Trade("sim", "BTC-USDT", T0, 1.0, 1.0, "buy", "1"),
                                   reply="a")])
    snapshot = logic.snapshot()
    resumed = CandleLogic(options(indicators=parse_indicators("ema:3")), snapshot)
    assert resumed.state.aggregator.markets == [("sim", "BTC-USDT")]
    assert resumed.state.indicators.keys == ("ema_3",)  # new indicators start afresh
    with pytest.raises(ValueError, match="timeframes 1s,1m and an allowed lateness"):
        CandleLogic(options(timeframes=parse_timeframes("1s")), snapshot)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_an_idle_stream_closes_its_candles_on_the_processing_time_timer() -> None:
    clock = Clock(T0 + 10 * S)
    logic = CandleLogic(options(now_ns=clock, indicators=()), None)
    trades = [Trade("sim", "BTC-USDT", T0 + 10 * S + i * S // 4, 10.0 + i, 1.0, "buy", str(i))
              for i in range(4)]  # one second of trades, then silence
    logic.on_batch([trades_message(*trades, reply="a")])
    due = logic.notify_at()
    assert due is not None and due.timestamp() == pytest.approx((T0 + 15 * S) / S)
    clock.now = T0 + 12 * S
    assert [c for out in logic.on_notify()[0] for c in out.candles] == []  # not idle long
    clock.now = T0 + 17 * S  # idle for 7 s: event time is taken to have moved on as much
    closed = [c for out in logic.on_notify()[0] for c in out.candles]
    assert [(c.timeframe, c.ts, c.trades) for c in closed] == [("1s", T0 + 10 * S, 4)]
    assert logic.state.aggregator.max_event_ns == T0 + 10 * S + 3 * S // 4 + 7 * S


def test_a_held_back_forming_update_goes_out_when_its_interval_ends() -> None:
    clock = Clock(T0 + 10 * S)
    logic = CandleLogic(
        options(now_ns=clock, indicators=(), forming_interval_ns=S // 4), None
    )
    first = Trade("sim", "BTC-USDT", T0 + 10 * S, 10.0, 1.0, "buy", "1")
    second = Trade("sim", "BTC-USDT", T0 + 10 * S + 1000, 11.0, 1.0, "buy", "2")
    out = logic.on_batch([trades_message(first, reply="a")])[0]
    assert [(c.timeframe, c.close) for o in out for c in o.updates] == [("1s", 10.0), ("1m", 10.0)]
    clock.now += S // 10
    out = logic.on_batch([trades_message(second, reply="b")])[0]
    assert [c for o in out for c in o.updates] == []  # too soon: held back
    due = logic.notify_at()
    assert due is not None and due.timestamp() == pytest.approx((T0 + 10 * S + S // 4) / S)
    clock.now = T0 + 10 * S + S // 4
    held = [c for o in logic.on_notify()[0] for c in o.updates]
    assert [(c.timeframe, c.close, c.trades, c.closed) for c in held] == [
        ("1s", 11.0, 2, False), ("1m", 11.0, 2, False)
    ]


def test_a_snapshot_of_the_python_indicator_engine_is_refused_with_what_to_do() -> None:
    # Taken by a flow with the default indicators before they were compiled (their state was
    # pickled Python objects), after 60 s of trades of one market.
    old = gzip.decompress((DATA / "snapshot-python-indicators.pickle.gz").read_bytes())
    with pytest.raises(ValueError, match=r"cannot be read by this version.*remove the recovery"
                       r" directory \(DATA/recovery\) to start afresh") as caught:
        CandleLogic(options(indicators=DEFAULT_INDICATORS), old)
    # Its indicator objects' classes are gone (an ImportError), or refuse the old layout.
    assert isinstance(caught.value.__cause__, ImportError | IndicatorStateError)
