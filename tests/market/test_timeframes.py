from __future__ import annotations

import pytest

from market.timeframes import STANDARD_TIMEFRAMES, Timeframe, TimeframeError, parse_timeframes

NS = 1_000_000_000


def test_standard_timeframes_parse_to_their_widths() -> None:
    widths = [Timeframe.parse(name).ns for name in STANDARD_TIMEFRAMES]
    assert widths == [NS, 60 * NS, 300 * NS, 900 * NS, 3600 * NS, 4 * 3600 * NS, 86400 * NS]


def test_buckets_align_to_the_epoch_in_utc() -> None:
    ts = 1_700_000_123_456_789_000  # 2023-11-14T22:15:23.456789Z
    assert Timeframe.parse("1s").floor(ts) == 1_700_000_123 * NS
    assert Timeframe.parse("1m").floor(ts) == 1_700_000_100 * NS
    assert Timeframe.parse("4h").floor(ts) == 1_699_992_000 * NS  # 20:00Z
    assert Timeframe.parse("1d").floor(ts) == 1_699_920_000 * NS  # midnight UTC


def test_bucket_boundaries_belong_to_the_later_bucket() -> None:
    minute = Timeframe.parse("1m")
    assert minute.floor(60 * NS) == 60 * NS
    assert minute.floor(60 * NS - 1) == 0


@pytest.mark.parametrize("bad", ["", "1", "m", "0s", "1w", "1.5m", "-1m", "1M"])
def test_malformed_timeframes_are_rejected(bad: str) -> None:
    with pytest.raises(TimeframeError, match="count and a unit"):
        Timeframe.parse(bad)


def test_parse_timeframes_sorts_and_dedupes() -> None:
    assert [tf.name for tf in parse_timeframes("1m, 1s,1m")] == ["1s", "1m"]
    assert Timeframe.parse("1m").divides(Timeframe.parse("2h"))
    assert not Timeframe.parse("7m").divides(Timeframe.parse("1h"))
