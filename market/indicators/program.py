"""`Program`: a set of indicators laid out for the compiled engine (`kernel`), and the state
of one series folded through it.

Each indicator class says what state it needs (`Indicator.layout`); a program places every
indicator's state in one float row and one int row per series, and its outputs side by side
in `keys` order. Programs are cached by their indicators, so the many users of one set share
one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from market.arrays import Floats, Ints
from market.indicators import kernel
from market.indicators.base import (
    STATE_FORMAT,
    CandleOrderError,
    Indicator,
    ParamValue,
    check_format,
)

#: One indicator of a program: its class and its parameters in declared order.
Part = tuple[type[Indicator], tuple[tuple[str, ParamValue], ...]]


@dataclass(frozen=True, slots=True)
class Layout:
    """What one indicator needs: its kind, integer parameters (up to three), constants (up to
    `kernel.CONSTANTS_WIDTH`), state sizes, the state floats that start as NaN (offsets in
    its float state), and the longest window it sums exactly."""

    kind: int
    ints: tuple[int, ...]
    constants: tuple[float, ...]
    floats: int
    int_slots: int
    nan_floats: tuple[int, ...] = ()
    window: int = 0


def ewm_weights(alpha: float) -> tuple[float, float, float]:
    """pandas' EWM weights: (alpha, 1 - alpha, (1 - alpha) + alpha)."""
    keep = 1.0 - alpha
    return (alpha, keep, keep + alpha)


@dataclass(frozen=True, slots=True, eq=False)
class Program:
    """The engine's arrays for one ordered set of indicators (see the module docstring)."""

    parts: tuple[Part, ...]
    keys: tuple[str, ...]
    codes: Ints
    constants: Floats
    scratch: int
    initial_f: Floats = field(repr=False)
    initial_i: Ints = field(repr=False)

    @property
    def width(self) -> int:
        return len(self.keys)


def program(indicators: Sequence[Indicator]) -> Program:
    """The program of these indicators, in this order (cached)."""
    return _program(tuple((type(ind), tuple(ind.params.items())) for ind in indicators))


@functools.lru_cache(maxsize=256)
def _program(parts: tuple[Part, ...]) -> Program:
    indicators = [cls(**dict(params)) for cls, params in parts]
    codes = np.zeros((len(indicators), kernel.CODES_WIDTH), np.int64)
    constants = np.zeros((len(indicators), kernel.CONSTANTS_WIDTH), np.float64)
    nans: list[int] = []
    f_size, i_size, out, scratch = 0, kernel.HEADER_INTS, 0, 1
    for j, indicator in enumerate(indicators):
        layout = indicator.layout()
        codes[j, kernel.C_KIND] = layout.kind
        codes[j, kernel.C_F] = f_size
        codes[j, kernel.C_I] = i_size
        codes[j, kernel.C_OUT] = out
        codes[j, kernel.C_A:kernel.C_A + len(layout.ints)] = layout.ints
        constants[j, :len(layout.constants)] = layout.constants
        nans += [f_size + k for k in layout.nan_floats]
        f_size += layout.floats
        i_size += layout.int_slots
        out += len(indicator.keys)
        scratch = max(scratch, layout.window + 1)
    initial_f = np.zeros(f_size, np.float64)
    initial_f[nans] = math.nan
    codes.flags.writeable = constants.flags.writeable = False
    return Program(
        parts=parts,
        keys=tuple(key for indicator in indicators for key in indicator.keys),
        codes=codes, constants=constants, scratch=scratch,
        initial_f=initial_f, initial_i=np.zeros(i_size, np.int64),
    )


class SeriesFold:
    """One series' state under a program, fed one candle at a time; `outputs` holds the
    outputs after the latest candle (NaN before the first). Pickles as its indicators and
    state only."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.state_f = program.initial_f.copy()
        self.state_i = program.initial_i.copy()
        self.outputs = np.full(program.width, math.nan)

    def __getstate__(self) -> dict[str, object]:
        return {"format": STATE_FORMAT, "parts": self.program.parts, "f": self.state_f,
                "i": self.state_i, "outputs": self.outputs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_format(state, "SeriesFold")
        self.program = _program(state["parts"])
        self.state_f, self.state_i, self.outputs = state["f"], state["i"], state["outputs"]

    def update(
        self, ts_ns: int, high: float, low: float, close: float, volume: float
    ) -> None:
        p = self.program
        if not kernel.fold_one(
            p.codes, p.constants, p.scratch, self.state_f, self.state_i, ts_ns,
            float(high), float(low), float(close), float(volume), self.outputs,
        ):
            raise CandleOrderError(
                f"candle at ts={ts_ns} does not come after the previous one at"
                f" ts={int(self.state_i[kernel.H_LAST_TS])}"
            )

    @property
    def last_ts(self) -> int | None:
        return int(self.state_i[kernel.H_LAST_TS]) if self.state_i[kernel.H_HAS_LAST] else None
