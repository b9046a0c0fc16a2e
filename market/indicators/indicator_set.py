"""`IndicatorSet`: the indicators of one symbol and timeframe, updated together."""

from __future__ import annotations

from collections.abc import Iterable

from market.indicators.base import CandleOrderError, Indicator, IndicatorConfigError
from market.indicators.registry import DEFAULT_INDICATORS, IndicatorSpec, parse_indicators


class IndicatorSet:
    """Several indicators fed the same closed candles, their outputs as one flat dict.

    Candles must come in strictly increasing `ts_ns` order; a repeat or an older one raises
    `CandleOrderError` and changes nothing. Pickles with all its state.
    """

    def __init__(self, specs: Iterable[IndicatorSpec] = DEFAULT_INDICATORS) -> None:
        self.indicators: tuple[Indicator, ...] = tuple(spec.build() for spec in specs)
        names = [indicator.name for indicator in self.indicators]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise IndicatorConfigError(f"indicator {duplicates[0]!r} is listed twice")
        self.keys: tuple[str, ...] = tuple(
            key for indicator in self.indicators for key in indicator.keys
        )
        self.warmup = max((indicator.warmup for indicator in self.indicators), default=0)
        self.last_ts: int | None = None

    @classmethod
    def parse(cls, text: str) -> IndicatorSet:
        """A set from a spec string such as `"sma:20,rsi:14,macd:12:26:9"`."""
        return cls(parse_indicators(text))

    def update(
        self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        """Fold the next closed candle into every indicator."""
        if self.last_ts is not None and ts_ns <= self.last_ts:
            raise CandleOrderError(
                f"candle at ts={ts_ns} does not come after the previous one at ts={self.last_ts}"
            )
        self.last_ts = ts_ns
        for indicator in self.indicators:
            indicator.update(ts_ns, open, high, low, close, volume)

    def values(self) -> dict[str, float]:
        """Every output by storage name (`sma_20`, `macd_12_26_9.hist`); NaN during warm-up."""
        outputs: list[float] = []
        for indicator in self.indicators:
            outputs += indicator.current()
        return dict(zip(self.keys, outputs, strict=True))
