"""Property-based fuzzing of the trade decoders: any bytes end as trades or bounded rejections.

Three kinds of input: arbitrary bytes; JSON-shaped values (nesting included) built by
hypothesis; and near-valid messages in exactly the layout the compiled fast path reads, with
number literals of every shape, so that the fast path is exercised and must agree with
msgspec to the bit.
"""

from __future__ import annotations

import json

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.json_trades import TradeDecoder
from market.messages import (
    MAX_DEAD_LETTER_BYTES,
    MAX_DETAIL_CHARS,
    MAX_EXCERPT_BYTES,
    DeadLetter,
    Rejected,
    Trade,
    decode_trades,
    encode,
    trade_problem,
)

NOW = 1_700_000_000 * 1_000_000_000
FUTURE = 60 * 10**9
KEY = ("sim", "BTC-USDT")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_bounded(rejected: list[Rejected], subject: str = "trades.sim.BTC-USDT") -> None:
    for r in rejected:
        assert len(r.detail) <= MAX_DETAIL_CHARS
        assert len(r.payload.encode()) <= 3 * MAX_EXCERPT_BYTES  # U+FFFD for a bad byte
        assert len(r.payload_sha256) == 64
        assert len(encode(DeadLetter.of(r, subject))) < MAX_DEAD_LETTER_BYTES


def check_decoded(data: bytes) -> tuple[list[Trade], list[Rejected]]:
    trades, rejected = decode_trades(data, now_ns=NOW, max_future_ns=FUTURE)
    for trade in trades:
        assert trade_problem(trade, now_ns=NOW, max_future_ns=FUTURE) is None
    check_bounded(rejected)
    if not trades and not rejected:  # nothing vanishes: only an empty array holds nothing
        assert msgspec.json.decode(data) == []
    return trades, rejected


def bits(trades: list[Trade]) -> list[tuple[object, ...]]:
    return [(t.exchange, t.symbol, t.ts, t.price.hex(), t.size.hex(), t.side, t.trade_id)
            for t in trades]


def fast_decoded(data: bytes) -> tuple[list[Trade], list[Rejected]]:
    result = TradeDecoder(max_future_ns=FUTURE).decode([(KEY, data)], now_ns=NOW)
    trades = [result.batch.trade(i) for i in range(len(result.batch))]
    return trades, [r for _, r in result.rejected]


def reference(data: bytes) -> tuple[list[Trade], list[str]]:
    """msgspec's answer, with the subject's market enforced as the flow does."""
    trades, rejected = decode_trades(data, now_ns=NOW, max_future_ns=FUTURE)
    reasons = [r.reason for r in rejected]
    reasons += ["subject_mismatch" for t in trades if (t.exchange, t.symbol) != KEY]
    return [t for t in trades if (t.exchange, t.symbol) == KEY], reasons


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_trades_or_bounded_rejections(data: bytes) -> None:
    check_decoded(data)
    trades, rejected = fast_decoded(data)
    expected, reasons = reference(data)
    assert bits(trades) == bits(expected)
    assert sorted(r.reason for r in rejected) == sorted(reasons)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(
        st.sampled_from(["exchange", "symbol", "ts", "price", "size", "side", "trade_id", "x"]),
        children, max_size=8,
    ),
    max_leaves=40,
)


@FUZZ
@given(json_values)
def test_any_json_value_gives_trades_or_bounded_rejections(value: object) -> None:
    check_decoded(json.dumps(value).encode())


@FUZZ
@given(st.integers(0, 20_000), st.sampled_from([b"[", b'{"a":', b'[{"exchange":']))
def test_nesting_of_any_depth_is_rejected_not_raised(depth: int, opener: bytes) -> None:
    data = opener * depth + b"1" + b"]" * depth
    trades, rejected = check_decoded(data)
    assert not trades
    trades, rejected = fast_decoded(data)
    assert not trades and rejected


# Number literals of every shape the JSON grammar allows (and some it does not), with the
# edges of the compiled path's exact conversion: 2**53, int64 overflow, 1e22, subnormals.
EDGE_NUMBERS = [
    "0", "-0.0", "00", "1.", ".5", "1e", "0.1", "0.3", "1e22", "1e23", "5e-324", "2.5e-7",
    "1.7976931348623157e308", "1e309", "9007199254740992", "9007199254740993",
    "9223372036854775807", "9223372036854775808", "9999999999999999999",
    "99999999999999999999", "18446744073709551617", "123456789012345678.5",
    "0.000000000000000000001", "1E5", "1e+5", "1e-5", "100000000000000000000000",
]


def mostly[T](usual: st.SearchStrategy[T], odd: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`usual` nine times in ten, so that whole messages often stay on the compiled path."""
    return st.integers(0, 9).flatmap(lambda k: usual if k else odd)


digits = st.text("0123456789", min_size=1, max_size=20)
any_number = st.sampled_from(EDGE_NUMBERS) | st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole.lstrip('0') or '0'}{frac}{exp}",
    st.sampled_from(["", "", "-"]),
    digits,
    st.sampled_from(["", ""]) | digits.map(lambda d: "." + d),
    st.sampled_from(["", "", ""]) | st.builds(
        lambda e, d: f"{e}{d}", st.sampled_from(["e", "E", "e-", "e+"]),
        st.text("0123456789", min_size=1, max_size=4),
    ),
)
plain_number = st.builds(
    lambda whole, frac: f"{whole}{frac}", st.integers(1, 10**9).map(str),
    st.sampled_from([""]) | st.integers(0, 10**8).map(lambda f: f".{f}"),
)
numbers = mostly(plain_number, any_number)
ids = mostly(st.integers(0, 10**18 - 1).map(str), st.sampled_from(
    ["01", "123456789012345678", "1234567890123456789", "a-1", ""]))
times = mostly(st.integers(1, NOW).map(str), st.sampled_from(
    [str(NOW + 2 * FUTURE), "9223372036854775807", "9223372036854775808", "0", "-5", "1.5"]))
sides = mostly(st.sampled_from(["buy", "sell", "unknown"]), st.sampled_from(["hold", "BUY"]))


@st.composite
def fast_layout_messages(draw: st.DrawFn) -> bytes:
    """Messages in exactly `encode`'s layout, with literal numbers and ids of any shape."""
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        rows.append(
            f'{{"exchange":"sim","symbol":"BTC-USDT","ts":{draw(times)},'
            f'"price":{draw(numbers)},"size":{draw(numbers)},"side":"{draw(sides)}",'
            f'"trade_id":"{draw(ids)}"}}'
        )
    text = "[" + ",".join(rows) + "]" if draw(st.booleans()) or len(rows) > 1 else rows[0]
    return text.encode()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fast_layout_messages())
def test_the_compiled_path_agrees_with_msgspec_to_the_bit(data: bytes) -> None:
    trades, rejected = fast_decoded(data)
    expected, reasons = reference(data)
    assert bits(trades) == bits(expected)
    assert sorted(r.reason for r in rejected) == sorted(reasons)
    check_bounded(rejected)


def test_a_huge_field_is_rejected_with_a_bounded_excerpt_length_and_hash() -> None:
    symbol = "A" * 1_000_000
    data = msgspec.json.encode([{"exchange": "sim", "symbol": symbol, "ts": NOW, "price": 1.0,
                                 "size": 1.0, "side": "buy", "trade_id": "1"}])
    trades, rejected = check_decoded(data)
    assert not trades and [r.reason for r in rejected] == ["bad_symbol"]
    letter = DeadLetter.of(rejected[0], "trades.sim.BTC-USDT")
    assert letter.payload_bytes > 1_000_000
    assert letter.payload == encode(Trade("sim", symbol, NOW, 1.0, 1.0, "buy", "1")).decode()[
        :MAX_EXCERPT_BYTES]
    assert "characters)" in letter.detail


def test_a_long_trade_id_is_rejected() -> None:
    data = encode([Trade("sim", "BTC-USDT", NOW, 1.0, 1.0, "buy", "x" * 129)])
    trades, rejected = check_decoded(data)
    assert not trades
    assert [r.reason for r in rejected] == ["bad_trade_id"]
