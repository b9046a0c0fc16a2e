"""`candlegraph feed`: one exchange's live trades on NATS, with its metrics on HTTP.

Runs `flows.exchange_feed.run_exchange_feed` until SIGINT or SIGTERM, serving the feed's
Prometheus metrics (`flows.feed_stats`) on
`CANDLEGRAPH_METRICS_HOST`:`CANDLEGRAPH_FEED_METRICS_PORT`
(`/metrics`; port 0 serves none).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from server.settings import Settings

log = logging.getLogger(__name__)


def run_feed(settings: Settings) -> int:
    from prometheus_client import start_http_server

    from flows.exchange_feed import FeedError, run_exchange_feed
    from flows.exchanges import ExchangeConfigError, check_exchange, parse_config
    from flows.feed_stats import FeedStats
    from flows.trade_feed import FeedOptions
    from market.exchange_data import canonical_symbol

    if not settings.exchange or not settings.exchange_symbols:
        print("candlegraph feed: give --exchange and --symbols (e.g. --exchange binance"
              " --symbols BTC/USDT,ETH/USDT)", file=sys.stderr)
        return 2
    try:
        check_exchange(settings.exchange)
        config = parse_config(settings.exchange_config)
    except ExchangeConfigError as error:
        print(f"candlegraph feed: {error}", file=sys.stderr)
        return 2
    stats = FeedStats(settings.exchange, interval_s=settings.feed_stats_interval_s)
    stats.watch(canonical_symbol(symbol) for symbol in settings.exchange_symbols)
    options = FeedOptions(
        stall_s=settings.feed_stall_s,
        backoff_s=settings.feed_backoff_s,
        backoff_max_s=settings.feed_backoff_max_s,
        poll_s=settings.feed_poll_s,
    )
    metrics = None
    if settings.feed_metrics_port:
        metrics, _ = start_http_server(
            settings.feed_metrics_port, addr=settings.metrics_host, registry=stats.registry
        )
        log.info("feed metrics at http://%s:%d/metrics", settings.metrics_host,
                 settings.feed_metrics_port)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_exchange_feed(
            settings.nats_url, settings.exchange, settings.exchange_symbols, config=config,
            options=options, stats=stats, stop=stop, buffer_trades=settings.feed_buffer,
            gather_s=settings.feed_batch_ms / 1000,
        )

    try:
        asyncio.run(run())
    except FeedError as error:
        print(f"candlegraph feed: {error}", file=sys.stderr)
        return 1
    finally:
        if metrics is not None:
            metrics.shutdown()
    return 0
