"""The `Indicator` base class, its parameter descriptions, and the errors of this package.

Exceptions:

    IndicatorError (ValueError)
    ├── IndicatorConfigError   unknown indicator, bad parameter or bad spec string
    ├── CandleOrderError       a candle that does not come after the previous one
    └── IndicatorStateError    pickled state of a layout this version does not read
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from market.indicators.program import Layout, SeriesFold

ParamValue = int | float

#: The largest window any indicator accepts, so a snapshot of its state stays small.
MAX_LENGTH = 10_000


class IndicatorError(ValueError):
    """Base of this package's errors."""


class IndicatorConfigError(IndicatorError):
    """An unknown indicator name, a bad parameter, or a malformed indicator spec string."""


class CandleOrderError(IndicatorError):
    """A candle whose timestamp is not after the previous candle's."""


class IndicatorStateError(IndicatorError):
    """Pickled indicator state written in a layout this version does not read."""


#: The layout of pickled indicator state. Bump it when the engine's state layout changes, so
#: state of another layout is refused with a clear error instead of being read wrong (the
#: pure-Python engine before it pickled no format: 1).
STATE_FORMAT = 2


def check_format(state: Mapping[str, object], what: str) -> None:
    """Raise `IndicatorStateError` unless a pickled `state` has today's layout."""
    found = state.get("format", 1)
    if found != STATE_FORMAT:
        raise IndicatorStateError(
            f"{what}: pickled indicator state of format {found}; this version reads format"
            f" {STATE_FORMAT} only"
        )


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an indicator: its name, type, default and inclusive bounds."""

    name: str
    type: type[int] | type[float]
    default: ParamValue
    minimum: ParamValue
    maximum: ParamValue
    description: str

    def check(self, indicator: str, value: object) -> ParamValue:
        """Return `value` as this parameter's type, or raise `IndicatorConfigError`."""
        where = f"{indicator}: parameter {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise IndicatorConfigError(
                f"{where} expects {self.type.__name__}, got {type(value).__name__} {value!r}"
            )
        if self.type is int and not isinstance(value, int):
            raise IndicatorConfigError(f"{where} expects an integer, got {value!r}")
        converted = self.type(value)
        if not self.minimum <= converted <= self.maximum:
            raise IndicatorConfigError(
                f"{where} must be between {self.minimum} and {self.maximum}, got {value!r}"
            )
        return converted


def length_param(default: int, minimum: int = 1, what: str = "window length") -> Param:
    """An integer window length parameter named `length`."""
    return Param("length", int, default, minimum, MAX_LENGTH, f"{what}, in candles")


def format_param(value: ParamValue) -> str:
    """A parameter value as it appears in storage names and spec strings: `20`, `2`, `2.5`."""
    return str(value) if isinstance(value, int) else format(value, "g")


class Indicator(ABC):
    """An indicator updated one closed candle at a time, in O(1) of the history length.

    Subclasses declare `NAME`, `PARAMS` and `OUTPUTS`, take their parameters as keyword
    arguments, and describe their state to the compiled engine (`layout`); the arithmetic is
    in `market.indicators.kernel`. Instances pickle with their state.
    """

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    OUTPUTS: ClassVar[tuple[str, ...]] = ("value",)

    #: Candles needed before every output is a number (NaN before).
    warmup: int

    def __init__(self, **params: ParamValue) -> None:
        self.params = self.validate(params)
        self.name = self.NAME + "".join(f"_{format_param(v)}" for v in self.params.values())
        self.keys: tuple[str, ...] = (
            (self.name,)
            if len(self.OUTPUTS) == 1
            else tuple(f"{self.name}.{output}" for output in self.OUTPUTS)
        )
        self._fold: SeriesFold | None = None

    @classmethod
    def validate(cls, params: Mapping[str, object]) -> dict[str, ParamValue]:
        """Every parameter, defaults filled in, in declared order; raise on bad input."""
        known = {p.name: p for p in cls.PARAMS}
        unknown = sorted(set(params) - set(known))
        if unknown:
            valid = ", ".join(known) or "none"
            raise IndicatorConfigError(
                f"{cls.NAME}: unknown parameter {unknown[0]!r}; valid parameters: {valid}"
            )
        values = {
            p.name: p.check(cls.NAME, params[p.name]) if p.name in params else p.default
            for p in cls.PARAMS
        }
        cls.check_together(values)
        return values

    @classmethod
    def check_together(cls, params: Mapping[str, ParamValue]) -> None:
        """Check constraints that tie parameters together; none by default."""
        return None

    @abstractmethod
    def layout(self) -> Layout:
        """The state and constants this indicator needs in the compiled engine."""

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        """Fold in the next closed candle; `ts_ns` is its bucket start, ns since epoch, UTC.
        A candle not after the previous one raises `CandleOrderError` and changes nothing."""
        if self._fold is None:
            from market.indicators.program import SeriesFold, program

            self._fold = SeriesFold(program((self,)))
        self._fold.update(ts_ns, high, low, close, volume)

    def current(self) -> tuple[float, ...]:
        """The outputs after the latest candle, in `OUTPUTS` order; NaN during warm-up."""
        if self._fold is None:
            return (math.nan,) * len(self.keys)
        return tuple(self._fold.outputs.tolist())

    def values(self) -> dict[str, float]:
        """The outputs keyed by their storage names (`keys`)."""
        return dict(zip(self.keys, self.current(), strict=True))

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "format": STATE_FORMAT}

    def __setstate__(self, state: dict[str, object]) -> None:
        check_format(state, type(self).__name__)
        self.__dict__.update({k: v for k, v in state.items() if k != "format"})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
