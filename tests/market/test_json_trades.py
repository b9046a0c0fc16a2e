"""The columnar trade decoder gives exactly what msgspec gives, fast path or not."""

from __future__ import annotations

import random
import struct

import msgspec
import pytest

from market.json_trades import TradeDecoder
from market.messages import Trade, decode_trades, encode

NOW = 1_700_000_000 * 1_000_000_000
KEY = ("sim", "BTC-USDT")


def random_float(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        return round(rng.uniform(0.0001, 100_000), rng.randrange(9))
    if kind == 1:
        return rng.uniform(1e-8, 1e8)
    if kind == 2:
        return 10 ** rng.uniform(-15, 15)
    if kind == 3:  # any finite positive double, bits at random
        value = struct.unpack("d", struct.pack("Q", rng.getrandbits(62)))[0]
        return value or 1.0
    if kind == 4:
        return float(rng.randrange(1, 10**7))
    return rng.choice([1e-06, 0.1, 0.3, 1e16, 1e22, 1e23, 2.5e-7, 5e-324, 9007199254740993.0])


def random_trades(rng: random.Random, count: int, symbol: str = "BTC-USDT") -> list[Trade]:
    return [
        Trade("sim", symbol, NOW - rng.randrange(10**12), random_float(rng), random_float(rng),
              rng.choice(["buy", "sell", "unknown"]), str(rng.randrange(10**18)))
        for _ in range(count)
    ]


def decoded(
    messages: list[tuple[tuple[str, str] | None, bytes]], *, fast: int | None = None
) -> list[Trade]:
    result = TradeDecoder(max_future_ns=60 * 10**9).decode(messages, now_ns=NOW)
    if fast is not None:
        assert result.fast_messages == fast
    return [result.batch.trade(i) for i in range(len(result.batch))]


def test_numbers_decode_to_the_same_doubles_as_msgspec() -> None:
    rng = random.Random(1)
    messages: list[tuple[tuple[str, str] | None, bytes]] = [
        (KEY, encode(random_trades(rng, 1))) for _ in range(20_000)
    ]
    expected = [t for _, data in messages for t in decode_trades(data, now_ns=NOW)[0]]
    result = TradeDecoder(max_future_ns=60 * 10**9).decode(messages, now_ns=NOW)
    # Most numbers take the compiled path; the others (17 digits, tiny exponents) msgspec.
    assert 5_000 < result.fast_messages < 20_000
    batch = result.batch
    assert [batch.trade(i) for i in range(len(batch))] == expected  # bit for bit


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exchange":"sim","symbol":"BTC-USDT","ts":1699999999000000000,"price":1.5,'
        b'"size":2,"side":"buy","trade_id":"7"}',  # one trade, not an array
        b'[ {"exchange": "sim", "symbol": "BTC-USDT", "ts": 1699999999000000000,'
        b' "price": 1.5, "size": 2, "side": "buy", "trade_id": "7"} ]',  # whitespace
        b'[{"symbol":"BTC-USDT","exchange":"sim","ts":1699999999000000000,"price":1.5,'
        b'"size":2,"side":"buy","trade_id":"7"}]',  # another field order
        b'[{"exchange":"sim","symbol":"BTC-USDT","ts":1699999999000000000,"price":1.5,'
        b'"size":2,"side":"buy","trade_id":"007"}]',  # an id that is not canonical
        b'[{"exchange":"sim","symbol":"BTC-USDT","ts":1699999999000000000,'
        b'"price":12345678901234567890,"size":1E2,"side":"sell","trade_id":"abc"}]',
        b"[]",
    ],
)
def test_other_layouts_decode_as_msgspec_does(payload: bytes) -> None:
    expected, rejected = decode_trades(payload, now_ns=NOW)
    assert rejected == []
    fast = payload == b"[]" or payload.startswith(b"{")
    assert decoded([(KEY, payload)], fast=int(fast)) == expected


def test_rejections_keep_their_reasons_and_neighbours() -> None:
    good = Trade("sim", "BTC-USDT", NOW, 10.0, 1.0, "buy", "1")
    zero = msgspec.structs.replace(good, price=0.0, trade_id="2")
    future = msgspec.structs.replace(good, ts=NOW + 3600 * 10**9, trade_id="3")
    other = msgspec.structs.replace(good, symbol="ETH-USDT", trade_id="4")
    messages: list[tuple[tuple[str, str] | None, bytes]] = [
        (KEY, encode([good])),
        (KEY, encode([zero, msgspec.structs.replace(good, trade_id="5")])),
        (KEY, encode([future])),
        (KEY, encode([other])),
        (None, encode([good])),
        (KEY, b"not json"),
        (KEY, encode([msgspec.structs.replace(good, trade_id="6")])),
    ]
    result = TradeDecoder(max_future_ns=60 * 10**9).decode(messages, now_ns=NOW)
    batch = result.batch
    assert [batch.trade(i).trade_id for i in range(len(batch))] == ["1", "5", "6"]
    assert [(m, r.reason) for m, r in result.rejected] == [
        (1, "bad_price"), (2, "future_timestamp"), (3, "subject_mismatch"), (4, "bad_subject"),
        (5, "undecodable"),
    ]
    assert result.trades_per_message.tolist() == [1, 1, 0, 0, 0, 0, 1]


def test_a_subject_with_a_bad_market_name_takes_the_checked_path() -> None:
    trade = Trade("Sim", "btc", NOW, 10.0, 1.0, "buy", "1")
    result = TradeDecoder(max_future_ns=0).decode([(("Sim", "btc"), encode([trade]))], now_ns=NOW)
    assert len(result.batch) == 0
    assert [r.reason for _, r in result.rejected] == ["bad_exchange"]
