"""Settings: one typed, frozen object built from `CANDLEGRAPH_*` variables, then CLI flags.

Built once in `main` (or by a test) and passed down. Every variable is listed in
`ENVIRONMENT`; an unknown `CANDLEGRAPH_*` variable is an error, so a typo never goes unseen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from market.exchange_data import ExchangeNameError, canonical_symbol, exchange_name
from market.indicators import DEFAULT_INDICATORS_TEXT, IndicatorConfigError, parse_indicators
from market.timeframes import STANDARD_TIMEFRAMES, TimeframeError, parse_timeframes
from server.ratelimit import Rate, RateError

PREFIX = "CANDLEGRAPH_"
_API_KEY_ENTRY = re.compile(r"^[A-Za-z0-9_.-]{1,64}:[0-9a-f]{64}$")
_ORIGIN = re.compile(r"^https?://[^/\s]+$")


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


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(part) for part in text.split(os.pathsep) if part.strip())


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
    timeframes: tuple[str, ...] = STANDARD_TIMEFRAMES
    allowed_lateness_s: float = 5.0
    max_candles: int = 10_000
    # The dataflow (`candlegraph flow`): indicators as a spec string (market.indicators), the
    # least time between two publishes of a forming candle, the spike filter (sigmas; 0 is
    # off), worker processes (and, for a cluster across machines, every process's host:port
    # with this one's index), Bytewax recovery under data_dir/recovery, its snapshot interval,
    # and how often each worker reports its counters.
    indicators: str = DEFAULT_INDICATORS_TEXT
    forming_interval_ms: int = 250
    spike_sigmas: float = 0.0
    flow_workers: int = 1
    flow_addresses: tuple[str, ...] = ()
    flow_process_id: int = 0
    flow_recovery: bool = True
    snapshot_interval_s: float = 10.0
    flow_stats_interval_s: float = 10.0
    # Prometheus metrics of the processes that are not the GraphQL server (which serves its
    # own on /metrics): the address they bind (the feed's too), and the flow's port (0 is off;
    # worker I of a local flow serves on port + I, so 9100 to 9163).
    metrics_host: str = "127.0.0.1"
    flow_metrics_port: int = 9100
    sim_symbols: tuple[str, ...] = field(
        default=("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")
    )
    sim_rate: float = 200.0
    sim_seed: int = 1
    # Whether `up` starts a trade source (the simulator, or the feed of `exchange`); without
    # one the flow takes only what is published on NATS, such as an import's replay.
    up_feed: bool = True
    # QuestDB (store "questdb"): ILP over HTTP (`http://[user:pass@]host:9000`), and the
    # PostgreSQL wire for reads (`postgresql://user:password@host:8812/qdb`).
    questdb_url: str = ""
    questdb_pg_url: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    # API keys as `name:sha256-hex-of-the-key` entries (see server/auth.py); none: no auth.
    api_keys: tuple[str, ...] = ()
    public_queries: bool = True
    mutation_rate: str = "10/min"
    cors_origins: tuple[str, ...] = ()
    subscription_buffer: int = 256
    # What a client may send the GraphQL server (server.graphql_view): request bodies, GET
    # query strings and websocket frames up to max_request_bytes; at most max_websockets
    # open websockets; a websocket must send connection_init within ws_init_timeout_s.
    max_request_bytes: int = 256 * 1024
    max_websockets: int = 1000
    ws_init_timeout_s: float = 10.0
    # Backtests: the most runs one parameter sweep may ask for (at most
    # strategies.sweep.MAX_COMBINATIONS, 1000); the worker processes `candlegraph serve` runs
    # itself (`--workers`; none by default) and `candlegraph worker` runs (`--concurrency`);
    # the port `candlegraph worker` serves its metrics on (0: none; `serve --workers` adds
    # them to the server's /metrics); how long a job's worker may go silent before the job is
    # delivered to another, and how many deliveries a job gets before it is failed.
    backtest_workers: int = 0
    sweep_max_runs: int = 200
    # Real markets (`candlegraph feed`, `backfill`, `up --exchange`): a ccxt exchange id, its
    # markets (BTC/USDT or BTC-USDT), and a JSON object merged into ccxt's config. The feed:
    # a stream silent this long reconnects, reconnects back off from feed_backoff_s to
    # feed_backoff_max_s, REST polling (exchanges without websockets) every feed_poll_s,
    # trades gathered for feed_batch_ms per message, at most feed_buffer trades waiting
    # before the markets are held back, metrics on feed_metrics_port (0: none).
    exchange: str = ""
    exchange_symbols: tuple[str, ...] = ()
    exchange_config: str = ""
    feed_stall_s: float = 30.0
    feed_backoff_s: float = 1.0
    feed_backoff_max_s: float = 60.0
    feed_poll_s: float = 1.0
    feed_batch_ms: float = 5.0
    feed_buffer: int = 100_000
    feed_metrics_port: int = 9200
    feed_stats_interval_s: float = 10.0
    worker_concurrency: int = 2
    worker_metrics_port: int = 9300
    backtest_ack_wait_s: float = 30.0
    backtest_max_attempts: int = 3
    # User strategies: directories of strategy files (`CANDLEGRAPH_STRATEGY_PATH`, separated
    # by os.pathsep, ':' on Linux), loaded by the server and by every backtest worker.
    strategy_path: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.store not in {"embedded", "questdb"}:
            raise SettingsError(f"store must be 'embedded' or 'questdb', got {self.store!r}")
        if self.store == "questdb" and not self.questdb_url:
            raise SettingsError(
                "store 'questdb' needs CANDLEGRAPH_QUESTDB_URL (ILP/HTTP, e.g."
                " http://admin:quest@127.0.0.1:9000); CANDLEGRAPH_QUESTDB_PG_URL (e.g."
                " postgresql://admin:quest@127.0.0.1:8812/qdb) if the PostgreSQL wire is not"
                " on the same host, port 8812, with the same user and password"
            )
        for name in ("port", "nats_port", "flow_metrics_port"):
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
        try:
            parse_indicators(self.indicators)
        except IndicatorConfigError as error:
            raise SettingsError(f"indicators: {error}") from error
        if self.forming_interval_ms < 0:
            raise SettingsError(
                f"forming_interval_ms must be >= 0, got {self.forming_interval_ms}"
            )
        if self.spike_sigmas < 0:
            raise SettingsError(f"spike_sigmas must be >= 0 (0 is off), got {self.spike_sigmas}")
        if not 1 <= self.flow_workers <= 64:
            raise SettingsError(f"flow_workers must be 1 to 64 processes, got {self.flow_workers}")
        if self.flow_addresses and not 0 <= self.flow_process_id < len(self.flow_addresses):
            raise SettingsError(
                f"flow_process_id must index flow_addresses (0 to"
                f" {len(self.flow_addresses) - 1}), got {self.flow_process_id}"
            )
        for name in ("snapshot_interval_s", "flow_stats_interval_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0 s, got {getattr(self, name)}")
        if self.log_format not in {"json", "text"}:
            raise SettingsError(f"log_format must be 'json' or 'text', got {self.log_format!r}")
        try:
            Rate.parse(self.mutation_rate)
        except RateError as error:
            raise SettingsError(f"mutation_rate: {error}") from error
        if self.subscription_buffer < 1:
            raise SettingsError(
                f"subscription_buffer must be >= 1 candle, got {self.subscription_buffer}"
            )
        if self.max_request_bytes < 1024:
            raise SettingsError(
                f"max_request_bytes must be >= 1024 bytes, got {self.max_request_bytes}"
            )
        if self.max_websockets < 1:
            raise SettingsError(f"max_websockets must be >= 1, got {self.max_websockets}")
        if self.ws_init_timeout_s <= 0:
            raise SettingsError(f"ws_init_timeout_s must be > 0 s, got {self.ws_init_timeout_s}")
        if not 0 <= self.backtest_workers <= 64:
            raise SettingsError(
                f"backtest_workers must be 0 to 64 processes, got {self.backtest_workers}"
            )
        if not 1 <= self.worker_concurrency <= 64:
            raise SettingsError(
                f"worker_concurrency must be 1 to 64 processes, got {self.worker_concurrency}"
            )
        if self.backtest_ack_wait_s < 0.5:
            raise SettingsError(
                f"backtest_ack_wait_s must be >= 0.5 s, got {self.backtest_ack_wait_s}"
            )
        if not 1 <= self.backtest_max_attempts <= 100:
            raise SettingsError(
                f"backtest_max_attempts must be 1 to 100, got {self.backtest_max_attempts}"
            )
        if not 1 <= self.sweep_max_runs <= 1000:
            raise SettingsError(f"sweep_max_runs must be 1 to 1000, got {self.sweep_max_runs}")
        names = [entry.partition(":")[0] for entry in self.api_keys]
        for number, entry in enumerate(self.api_keys, start=1):
            if not _API_KEY_ENTRY.match(entry):
                # Never echo the entry: it may be a key pasted by mistake.
                raise SettingsError(
                    f"api_keys: entry {number} is not name:<64 hex digits of the key's SHA-256>"
                )
        if len(set(names)) != len(names):
            raise SettingsError(f"api_keys: names must be unique, got {', '.join(names)}")
        self._check_exchange()
        for directory in self.strategy_path:
            if not directory.is_dir():
                raise SettingsError(f"strategy_path: {str(directory)!r} is not a directory")
        for origin in self.cors_origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise SettingsError(
                    f"cors_origins: expected '*' or scheme://host[:port], got {origin!r}"
                )

    def _check_exchange(self) -> None:
        try:
            if self.exchange:
                exchange_name(self.exchange)
            for symbol in self.exchange_symbols:
                canonical_symbol(symbol)
        except ExchangeNameError as error:
            raise SettingsError(str(error)) from error
        if self.exchange_config.strip():
            try:
                config = json.loads(self.exchange_config)
            except json.JSONDecodeError as error:
                raise SettingsError(f"exchange_config is not JSON: {error}") from error
            if not isinstance(config, dict):
                raise SettingsError("exchange_config must be a JSON object of ccxt settings")
        for name in ("feed_stall_s", "feed_backoff_s", "feed_poll_s", "feed_stats_interval_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0 s, got {getattr(self, name)}")
        if self.feed_backoff_max_s < self.feed_backoff_s:
            raise SettingsError("feed_backoff_max_s must be >= feed_backoff_s")
        if self.feed_batch_ms < 0:
            raise SettingsError(f"feed_batch_ms must be >= 0, got {self.feed_batch_ms}")
        if self.feed_buffer < 1:
            raise SettingsError(f"feed_buffer must be >= 1 trade, got {self.feed_buffer}")
        if not 0 <= self.worker_metrics_port <= 65535:
            raise SettingsError(
                f"worker_metrics_port must be a TCP port (0: none), got {self.worker_metrics_port}"
            )
        if not 0 <= self.feed_metrics_port <= 65535:
            raise SettingsError(
                f"feed_metrics_port must be a TCP port (0: none), got {self.feed_metrics_port}"
            )

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
            if name == "strategy_path":
                text = os.pathsep.join(str(path) for path in value)
            else:
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
    "indicators": str,
    "forming_interval_ms": int,
    "spike_sigmas": float,
    "flow_workers": int,
    "flow_addresses": _names,
    "flow_process_id": int,
    "flow_recovery": _bool,
    "snapshot_interval_s": float,
    "flow_stats_interval_s": float,
    "metrics_host": str,
    "flow_metrics_port": int,
    "sim_symbols": _names,
    "sim_rate": float,
    "sim_seed": int,
    "questdb_url": str,
    "questdb_pg_url": str,
    "log_level": str,
    "log_format": str,
    "api_keys": _names,
    "public_queries": _bool,
    "up_feed": _bool,
    "mutation_rate": str,
    "cors_origins": _names,
    "subscription_buffer": int,
    "max_request_bytes": int,
    "max_websockets": int,
    "ws_init_timeout_s": float,
    "backtest_workers": int,
    "sweep_max_runs": int,
    "exchange": str,
    "exchange_symbols": _names,
    "exchange_config": str,
    "feed_stall_s": float,
    "feed_backoff_s": float,
    "feed_backoff_max_s": float,
    "feed_poll_s": float,
    "feed_batch_ms": float,
    "feed_buffer": int,
    "feed_metrics_port": int,
    "feed_stats_interval_s": float,
    "worker_concurrency": int,
    "worker_metrics_port": int,
    "backtest_ack_wait_s": float,
    "backtest_max_attempts": int,
    "strategy_path": _paths,
}
