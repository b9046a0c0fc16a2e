"""`FeedStats`: what an exchange feed reports, as log lines and Prometheus metrics.

The feed process serves them on its own `/metrics` (`CANDLEGRAPH_FEED_METRICS_PORT`, on
`CANDLEGRAPH_HOST`): a Prometheus server scrapes each feed process, as it does the GraphQL
servers, and the lag is measured where the trades are.

- `candlegraph_feed_trades_total{exchange,symbol}`: trades published (acked by JetStream);
- `candlegraph_feed_messages_total{exchange}`: JetStream messages they went out in;
- `candlegraph_feed_reconnects_total{exchange,symbol}`: stream reconnections (a dropped
  socket, a stalled stream, an exchange error);
- `candlegraph_feed_gap_trades_total{exchange,symbol}`: trades fetched over REST to fill
  gaps (after a reconnect or a restart);
- `candlegraph_feed_dead_letters_total{exchange,reason}`: exchange trades rejected;
- `candlegraph_feed_rate_limited_total{exchange}`: requests the exchange refused for rate
  (HTTP 429/418, Binance -1003);
- `candlegraph_feed_publish_retries_total{exchange}`: JetStream publishes tried again;
- `candlegraph_feed_buffered_trades{exchange}`: trades waiting to be published;
- `candlegraph_feed_lag_seconds{exchange,symbol}`: wall time minus the exchange time of the
  last trade published, at scrape time.

Every `interval_s` the same figures go to the log as one line.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_LAG = "candlegraph_feed_lag_seconds"
_LAG_HELP = "Wall time minus the exchange time of the last trade published."


class FeedStats(Collector):
    """Counters of one feed process (one exchange); `clock_ns` gives wall time."""

    def __init__(
        self,
        exchange: str,
        *,
        interval_s: float = 10.0,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self.registry = CollectorRegistry()
        self._clock_ns = clock_ns
        self._monotonic = monotonic
        self._interval_s = interval_s
        self._next_report = monotonic() + interval_s
        self._window_trades = 0
        self._window_start = monotonic()
        self.counts: Counter[str] = Counter()
        self.last_ts: dict[str, int] = {}
        self.buffered = 0
        labels = ["exchange", "symbol"]
        self._trades = PromCounter("candlegraph_feed_trades", "Trades published.", labels,
                                   registry=self.registry)
        self._messages = PromCounter("candlegraph_feed_messages",
                                     "JetStream messages the trades went out in.", ["exchange"],
                                     registry=self.registry)
        self._reconnects = PromCounter("candlegraph_feed_reconnects",
                                       "Stream reconnections.", labels, registry=self.registry)
        self._gaps = PromCounter("candlegraph_feed_gap_trades",
                                 "Trades fetched over REST to fill gaps.", labels,
                                 registry=self.registry)
        self._letters = PromCounter("candlegraph_feed_dead_letters",
                                    "Exchange trades rejected, by reason.",
                                    ["exchange", "reason"], registry=self.registry)
        self._limited = PromCounter("candlegraph_feed_rate_limited",
                                    "Requests refused by the exchange for rate.", ["exchange"],
                                    registry=self.registry)
        self._retries = PromCounter("candlegraph_feed_publish_retries",
                                    "JetStream publishes tried again.", ["exchange"],
                                    registry=self.registry)
        self._buffered = PromGauge("candlegraph_feed_buffered_trades",
                                   "Trades waiting to be published.", ["exchange"],
                                   registry=self.registry)
        self.registry.register(self)
        # Series exist at zero from the start, so that rates and alerts see them before the
        # first event (Prometheus's advice for labelled counters).
        for family in (self._messages, self._limited, self._retries, self._buffered):
            family.labels(exchange)

    def watch(self, symbols: Iterable[str]) -> None:
        """Create the per-market series of these markets (canonical symbols) at zero."""
        for symbol in symbols:
            for family in (self._trades, self._reconnects, self._gaps):
                family.labels(self.exchange, symbol)

    # Events --------------------------------------------------------------------------------

    def published(self, symbol: str, trades: int, last_ts: int) -> None:
        self._trades.labels(self.exchange, symbol).inc(trades)
        self.counts["trades"] += trades
        self._window_trades += trades
        self.last_ts[symbol] = max(self.last_ts.get(symbol, 0), last_ts)

    def message_sent(self) -> None:
        self._messages.labels(self.exchange).inc()
        self.counts["messages"] += 1

    def reconnected(self, symbol: str) -> None:
        self._reconnects.labels(self.exchange, symbol).inc()
        self.counts["reconnects"] += 1

    def gap_filled(self, symbol: str, trades: int) -> None:
        self._gaps.labels(self.exchange, symbol).inc(trades)
        self.counts["gap_trades"] += trades

    def dead_lettered(self, reason: str) -> None:
        self._letters.labels(self.exchange, reason).inc()
        self.counts[f"dead_letters.{reason}"] += 1

    def rate_limited(self) -> None:
        self._limited.labels(self.exchange).inc()
        self.counts["rate_limited"] += 1

    def publish_retried(self) -> None:
        self._retries.labels(self.exchange).inc()
        self.counts["publish_retries"] += 1

    def set_buffered(self, trades: int) -> None:
        self.buffered = trades
        self._buffered.labels(self.exchange).set(trades)

    # Reports -------------------------------------------------------------------------------

    def lag_s(self) -> dict[str, float]:
        now = self._clock_ns()
        return {symbol: (now - ts) / 1e9 for symbol, ts in sorted(self.last_ts.items())}

    def report_if_due(self) -> str | None:
        """The log line when the interval has passed (logging it too), else None."""
        now = self._monotonic()
        if now < self._next_report:
            return None
        rate = self._window_trades / max(now - self._window_start, 1e-9)
        self._next_report = now + self._interval_s
        self._window_trades, self._window_start = 0, now
        lags = " ".join(f"lag.{s}={lag:.2f}s" for s, lag in self.lag_s().items())
        counts = " ".join(f"{name}={value}" for name, value in sorted(self.counts.items()))
        line = (f"feed {self.exchange}: {rate:,.0f} trades/s buffered={self.buffered}"
                f" {counts} {lags}").rstrip()
        log.info("%s", line)
        return line

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(_LAG, _LAG_HELP, labels=["exchange", "symbol"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(_LAG, _LAG_HELP, labels=["exchange", "symbol"])
        for symbol, lag in self.lag_s().items():
            family.add_metric([self.exchange, symbol], lag)
        yield family
