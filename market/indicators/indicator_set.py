"""`IndicatorSet`: the indicators of one symbol and timeframe, updated together."""

from __future__ import annotations

from collections.abc import Iterable

from market.indicators.base import STATE_FORMAT, IndicatorConfigError, check_format
from market.indicators.program import Program, SeriesFold, program
from market.indicators.registry import DEFAULT_INDICATORS, IndicatorSpec, parse_indicators


def set_program(specs: Iterable[IndicatorSpec]) -> Program:
    """The engine's program of these indicators, in order; raise on a name listed twice."""
    indicators = [spec.build() for spec in specs]
    names = [indicator.name for indicator in indicators]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise IndicatorConfigError(f"indicator {duplicates[0]!r} is listed twice")
    return program(indicators)


class IndicatorSet:
    """Several indicators fed the same closed candles, their outputs as one flat dict.

    Candles must come in strictly increasing `ts_ns` order; a repeat or an older one raises
    `CandleOrderError` and changes nothing. Pickles with all its state.
    """

    def __init__(self, specs: Iterable[IndicatorSpec] = DEFAULT_INDICATORS) -> None:
        self.specs = tuple(specs)
        self._fold = SeriesFold(set_program(self.specs))
        self.keys: tuple[str, ...] = self._fold.program.keys
        self.warmup = max((spec.build().warmup for spec in self.specs), default=0)

    @classmethod
    def parse(cls, text: str) -> IndicatorSet:
        """A set from a spec string such as `"sma:20,rsi:14,macd:12:26:9"`."""
        return cls(parse_indicators(text))

    @property
    def last_ts(self) -> int | None:
        """The time of the latest candle folded in, None before the first."""
        return self._fold.last_ts

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        """Fold the next closed candle into every indicator."""
        self._fold.update(ts_ns, high, low, close, volume)

    def values(self) -> dict[str, float]:
        """Every output by storage name (`sma_20`, `macd_12_26_9.hist`); NaN during warm-up."""
        return dict(zip(self.keys, self._fold.outputs.tolist(), strict=True))

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "format": STATE_FORMAT}

    def __setstate__(self, state: dict[str, object]) -> None:
        check_format(state, "IndicatorSet")
        self.__dict__.update({k: v for k, v in state.items() if k != "format"})
