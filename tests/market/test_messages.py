from __future__ import annotations

import msgspec

from market.messages import Trade, decode_trades, encode

NOW = 1_700_000_000 * 1_000_000_000


def trade(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "exchange": "sim", "symbol": "BTC-USDT", "ts": NOW, "price": 100.5, "size": 2.0,
        "side": "buy", "trade_id": "1",
    }
    fields.update(overrides)
    return fields


def decode(payload: object) -> tuple[list[Trade], list[tuple[str, str]]]:
    trades, rejected = decode_trades(msgspec.json.encode(payload), now_ns=NOW)
    return trades, [(r.reason, r.payload) for r in rejected]


def test_a_message_holds_one_trade_or_an_array() -> None:
    one, _ = decode(trade())
    many, _ = decode([trade(trade_id="1"), trade(trade_id="2")])
    assert one == [Trade("sim", "BTC-USDT", NOW, 100.5, 2.0, "buy", "1")]
    assert [t.trade_id for t in many] == ["1", "2"]


def test_an_integer_price_is_accepted_as_a_float() -> None:
    trades, rejected = decode(trade(price=100))
    assert rejected == [] and trades[0].price == 100.0


def test_one_bad_element_is_rejected_alone() -> None:
    trades, rejected = decode([trade(trade_id="1"), {"exchange": "sim"}, trade(trade_id="3")])
    assert [t.trade_id for t in trades] == ["1", "3"]
    assert [reason for reason, _ in rejected] == ["missing_field"]


def test_undecodable_bytes_are_rejected_whole() -> None:
    trades, rejected = decode_trades(b"{not json", now_ns=NOW)
    assert trades == [] and [r.reason for r in rejected] == ["undecodable"]


def test_impossible_values_are_rejected_with_their_reason() -> None:
    cases = {
        "bad_price": [trade(price=0), trade(price=-1.0), trade(price=1e100)],
        "bad_size": [trade(size=-0.1), trade(size=1e300)],
        "bad_trade_id": [trade(trade_id="9" * 129)],
        "future_timestamp": [trade(ts=NOW + 3600 * 1_000_000_000)],
        "bad_timestamp": [trade(ts=0)],
        "bad_symbol": [trade(symbol="btc/usdt"), trade(symbol="BTC.USDT"), trade(symbol=">")],
        "bad_exchange": [trade(exchange="Binance")],
        "bad_field": [trade(side="long"), trade(price="100"), trade(size=[1])],
        "missing_field": [trade(trade_id="")],
    }
    for reason, payloads in cases.items():
        trades, rejected = decode(payloads)
        assert trades == [], reason
        assert [r for r, _ in rejected] == [reason] * len(payloads), reason


def test_a_zero_size_trade_is_valid() -> None:
    trades, rejected = decode(trade(size=0))
    assert rejected == [] and trades[0].size == 0.0


def test_trades_round_trip_through_json() -> None:
    original = Trade("binance", "ETH-USDT", NOW, 3400.25, 0.5, "sell", "abc")
    assert decode_trades(encode([original]), now_ns=NOW) == ([original], [])


def test_a_number_beyond_float_range_is_rejected_alone() -> None:
    good = msgspec.json.encode(trade(trade_id="1")).decode()
    out_of_range = good.replace('"price":100.5', '"price":1e999').replace('"1"', '"2"')
    trades, rejected = decode_trades(f"[{good},{out_of_range}]".encode(), now_ns=NOW)
    assert [t.trade_id for t in trades] == ["1"]
    assert [r.reason for r in rejected] == ["bad_field"]
