"""Indicators by name: the registry, validated specs, and the spec string parser.

A spec string lists indicators separated by commas; each is a registry name followed by its
parameters' values, colon-separated, in declared order; values left out take their defaults:

    "sma:20,rsi:14,macd:12:26:9,bbands:20:2.5,stoch:14:3:3,obv,vwap"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from market.indicators.base import (
    Indicator,
    IndicatorConfigError,
    ParamValue,
    format_param,
)
from market.indicators.momentum import CCI, MACD, ROC, RSI, Stoch
from market.indicators.overlap import EMA, SMA, WMA
from market.indicators.volatility import ATR, BBands
from market.indicators.volume import OBV, VWAP

#: Every indicator class by its lower-case registry name.
INDICATORS: Mapping[str, type[Indicator]] = {
    cls.NAME: cls for cls in (SMA, EMA, WMA, RSI, MACD, BBands, ATR, Stoch, OBV, ROC, CCI, VWAP)
}


def indicator_class(kind: str) -> type[Indicator]:
    """The class registered as `kind`; raise `IndicatorConfigError` listing valid names."""
    try:
        return INDICATORS[kind]
    except KeyError:
        valid = ", ".join(INDICATORS)
        raise IndicatorConfigError(f"unknown indicator {kind!r}; valid names: {valid}") from None


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """A validated indicator choice: registry name and every parameter, in declared order.

    Build one with `indicator_spec` or `parse_indicators`; `build()` makes a fresh instance.
    """

    kind: str
    params: tuple[tuple[str, ParamValue], ...]

    @property
    def name(self) -> str:
        """Storage name of the instance: `rsi_14`, `macd_12_26_9`, `obv`."""
        return self.kind + "".join(f"_{format_param(v)}" for _, v in self.params)

    def build(self) -> Indicator:
        """A new instance with empty state."""
        return INDICATORS[self.kind](**dict(self.params))

    def __str__(self) -> str:
        return ":".join([self.kind, *(format_param(v) for _, v in self.params)])


def indicator_spec(kind: str, params: Mapping[str, object] | None = None) -> IndicatorSpec:
    """Validate `kind` and `params` (unknown keys are errors; missing ones take defaults)."""
    cls = indicator_class(kind)
    values = cls.validate(params or {})
    return IndicatorSpec(kind, tuple(values.items()))


def build_indicator(kind: str, params: Mapping[str, object] | None = None) -> Indicator:
    """A new indicator by registry name: `build_indicator("rsi", {"length": 14})`."""
    return indicator_spec(kind, params).build()


def parse_indicators(text: str) -> tuple[IndicatorSpec, ...]:
    """Parse a spec string such as `"sma:20,macd:12:26:9,obv"`; an empty string gives none."""
    specs: list[IndicatorSpec] = []
    if not text.strip():
        return ()
    for item in text.split(","):
        kind, *raw_values = (part.strip() for part in item.split(":"))
        if not kind:
            raise IndicatorConfigError(f"indicator spec {text!r} has an empty entry {item!r}")
        cls = indicator_class(kind)
        if len(raw_values) > len(cls.PARAMS):
            names = ":".join([kind, *(p.name for p in cls.PARAMS)])
            raise IndicatorConfigError(
                f"indicator spec {item.strip()!r} has {len(raw_values)} values; "
                f"expected at most {len(cls.PARAMS)} ({names})"
            )
        params: dict[str, object] = {}
        for param, raw in zip(cls.PARAMS, raw_values, strict=False):
            try:
                params[param.name] = param.type(raw)
            except ValueError:
                raise IndicatorConfigError(
                    f"{kind}: parameter {param.name!r} expects {param.type.__name__}, "
                    f"got {raw!r} in {item.strip()!r}"
                ) from None
        specs.append(indicator_spec(kind, params))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise IndicatorConfigError(f"indicator {spec.name!r} is listed twice in {text!r}")
        seen.add(spec.name)
    return tuple(specs)


#: The spec string of `DEFAULT_INDICATORS`: one of every registered indicator.
DEFAULT_INDICATORS_TEXT = (
    "sma:20,ema:20,wma:20,rsi:14,macd:12:26:9,bbands:20:2,atr:14,stoch:14:3:3,"
    "obv,roc:10,cci:20,vwap"
)

#: One instance of every registered indicator, with common trading parameters.
DEFAULT_INDICATORS: tuple[IndicatorSpec, ...] = parse_indicators(DEFAULT_INDICATORS_TEXT)
