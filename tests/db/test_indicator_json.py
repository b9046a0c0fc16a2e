"""The embedded store's JSON objects of indicator rows: those of a dict of the same values."""

from __future__ import annotations

import math

import msgspec
import numpy as np

from db.indicator_json import json_objects

NAMES = ("sma_20", "macd_12_26_9.hist", "bbands_20_2.5.upper", "obv")


def test_objects_hold_every_value_exactly_and_leave_nans_out_unless_whole() -> None:
    rng = np.random.default_rng(3)
    # Doubles of every magnitude and sign, from their bits, with NaN, infinities and -0.0.
    bits = rng.integers(0, 2**64, (5_000, len(NAMES)), dtype=np.uint64)  # several blocks
    values = bits.view(np.float64).copy()
    values[::7, 1] = math.nan
    values[::11, 2] = math.inf
    values[::13, 0] = -0.0
    values[5] = math.nan  # a row with no number at all
    whole = rng.random(len(values)) < 0.3
    decode = msgspec.json.Decoder(dict[str, float | None]).decode
    for row, text, replace in zip(values.tolist(), json_objects(NAMES, values, whole), whole,
                                  strict=True):
        expected = {
            name: value if math.isfinite(value) else None
            for name, value in zip(NAMES, row, strict=True)
            if replace or math.isfinite(value)
        }
        got = decode(text)
        assert list(got) == list(expected)  # names in order
        assert all(
            np.float64(got[k]).tobytes() == np.float64(v).tobytes() if v is not None
            else got[k] is None for k, v in expected.items()
        ), text


def test_no_rows_give_no_objects_and_no_names_give_empty_ones() -> None:
    assert json_objects(NAMES, np.empty((0, 4)), np.empty(0, np.bool_)) == []
    assert json_objects((), np.empty((2, 0)), np.zeros(2, np.bool_)) == ["{}", "{}"]
