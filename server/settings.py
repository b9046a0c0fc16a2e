"""Settings: one typed, frozen object built from `CANDLEGRAPH_*` variables, then CLI flags.

Built once in `main` (or by a test) and passed down. Every variable is listed in
`ENVIRONMENT`; an unknown `CANDLEGRAPH_*` variable is an error, so a typo never goes unseen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from market.timeframes import TimeframeError, parse_timeframes

PREFIX = "CANDLEGRAPH_"


class SettingsError(ValueError):
    """A setting that is unknown or holds a value of the wrong kind."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _timeframes(text: str) -> tuple[str, ...]:
    return tuple(tf.name for tf in parse_timeframes(text))


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("data")
    nats_url: str = "nats://127.0.0.1:4222"
    nats_port: int = 0
    host: str = "127.0.0.1"
    port: int = 8000
    store: str = "embedded"
    timeframes: tuple[str, ...] = ("1s", "1m")
    allowed_lateness_s: float = 5.0
    max_candles: int = 10_000
    sim_symbols: tuple[str, ...] = field(
        default=("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")
    )
    sim_rate: float = 200.0
    sim_seed: int = 1
    questdb_url: str = ""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.store not in {"embedded", "questdb"}:
            raise SettingsError(f"store must be 'embedded' or 'questdb', got {self.store!r}")
        for name in ("port", "nats_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise SettingsError(f"{name} must be a TCP port (0 to 65535), got {value}")
        if self.allowed_lateness_s < 0:
            raise SettingsError(f"allowed_lateness_s must be >= 0, got {self.allowed_lateness_s}")
        if self.sim_rate <= 0:
            raise SettingsError(f"sim_rate must be > 0 trades/s, got {self.sim_rate}")
        if self.max_candles < 1:
            raise SettingsError(f"max_candles must be >= 1, got {self.max_candles}")
        try:
            parse_timeframes(list(self.timeframes))
        except TimeframeError as error:
            raise SettingsError(f"timeframes: {error}") from error

    @property
    def store_path(self) -> Path:
        return self.data_dir / "candlegraph.sqlite"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Defaults overridden by every `CANDLEGRAPH_*` variable in `environ`."""
        values: dict[str, Any] = {}
        for key, text in environ.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX):].lower()
            parse = ENVIRONMENT.get(name)
            if parse is None:
                known = ", ".join(PREFIX + n.upper() for n in ENVIRONMENT)
                raise SettingsError(f"unknown setting {key}; known settings: {known}")
            try:
                values[name] = parse(text)
            except ValueError as error:
                raise SettingsError(f"{key}={text!r}: {error}") from error
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; `None` values (unset CLI flags) are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_env(self) -> dict[str, str]:
        """The settings as `CANDLEGRAPH_*` variables, to hand to a child process."""
        env = {}
        for name in ENVIRONMENT:
            value = getattr(self, name)
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[PREFIX + name.upper()] = text
        return env


ENVIRONMENT: dict[str, Callable[[str], Any]] = {
    "data_dir": Path,
    "nats_url": str,
    "nats_port": int,
    "host": str,
    "port": int,
    "store": str,
    "timeframes": _timeframes,
    "allowed_lateness_s": float,
    "max_candles": int,
    "sim_symbols": _names,
    "sim_rate": float,
    "sim_seed": int,
    "questdb_url": str,
    "log_level": str,
}
