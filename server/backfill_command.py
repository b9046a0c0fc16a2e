"""`candlegraph backfill`: the command around `flows.candle_backfill.CandleBackfill`.

Reads the range (`--since`/`--days`, `--until`, UTC), opens the store and the exchange, and
shows progress: a `tqdm` bar per series on a terminal (candles done and to do, rate, ETA),
plain log lines otherwise. The first Ctrl-C (or SIGTERM) stops after the page in hand is
stored; run the same command again to go on. Exit status: 0 when every series is filled, 1
when one failed (each failure is logged, and the other series still run), 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

from server.settings import Settings

log = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0


class _BadInput(ValueError):
    pass


def parse_time(text: str, flag: str) -> datetime:
    """`2024-01-01`, `2024-01-01T12:00` or `2024-01-01T12:00:00+02:00`; UTC unless a zone
    is given."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _BadInput(
            f"{flag} must be a date or time such as 2024-01-01 or 2024-01-01T12:00 (UTC),"
            f" got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class TerminalProgress:
    """A tqdm bar per series."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar = None

    def begin(self, what: str, total: int) -> None:
        self._bar = self._tqdm(total=total, desc=what, unit=" candles", unit_scale=True,
                               dynamic_ncols=True)

    def advance(self, candles: int) -> None:
        if self._bar is not None:
            self._bar.update(candles)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LogProgress:
    """A log line per series when it starts and ends, and every `every_s` in between."""

    def __init__(self, every_s: float = _LOG_EVERY_S) -> None:
        self._every_s = every_s
        self._what = ""
        self._total = self._done = 0
        self._start = self._next = 0.0

    def begin(self, what: str, total: int) -> None:
        self._what, self._total, self._done = what, total, 0
        self._start = time.monotonic()
        self._next = self._start + self._every_s
        log.info("%s: %d candles to fetch", what, total)

    def advance(self, candles: int) -> None:
        self._done += candles
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every_s
            self._line(now)

    def end(self) -> None:
        self._line(time.monotonic())

    def _line(self, now: float) -> None:
        rate = self._done / max(now - self._start, 1e-9)
        left = (self._total - self._done) / rate if rate else float("inf")
        share = 100.0 * self._done / self._total if self._total else 100.0
        log.info("%s: %d of %d candles (%.1f %%), %.0f candles/s, %s left", self._what,
                 self._done, self._total, share, rate,
                 "unknown" if left == float("inf") else f"{left:.0f} s")


def run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from db.store import StoreError
    from flows.candle_backfill import BackfillError, BackfillRequest, CandleBackfill
    from flows.exchanges import ExchangeConfigError, open_exchange, parse_config
    from market.exchange_data import canonical_symbol, exchange_name
    from market.indicators import parse_indicators
    from market.timeframes import TimeframeError, parse_timeframes
    from server.stores import open_store

    try:
        if not settings.exchange or not settings.exchange_symbols:
            raise _BadInput("give --exchange and --symbols (e.g. --exchange binance"
                            " --symbols BTC/USDT)")
        timeframes = tuple(tf.name for tf in parse_timeframes(args.backfill_timeframes))
        until = (parse_time(args.backfill_until, "--until") if args.backfill_until
                 else datetime.now(UTC))
        since = parse_time(args.backfill_since, "--since") if args.backfill_since else None
        if args.backfill_days is not None:
            if since is not None or args.backfill_days < 1:
                raise _BadInput("--days takes a number of days >= 1, instead of --since")
            since = until - timedelta(days=args.backfill_days)
        if since is not None and since >= until:
            raise _BadInput(f"--since {since.isoformat()} is not before --until"
                            f" {until.isoformat()}")
        config = parse_config(settings.exchange_config)
        request = BackfillRequest(
            exchange=exchange_name(settings.exchange),
            symbols=tuple(canonical_symbol(s) for s in settings.exchange_symbols),
            timeframes=timeframes,
            since_ns=None if since is None else int(since.timestamp()) * 1_000_000_000,
            until_ns=int(until.timestamp()) * 1_000_000_000,
            repair=args.backfill_repair,
        )
        exchange = open_exchange(request.exchange, config, streaming=False)
    except (_BadInput, TimeframeError, ExchangeConfigError, ValueError) as error:
        print(f"candlegraph backfill: {error}", file=sys.stderr)
        return 2
    progress = TerminalProgress() if sys.stderr.isatty() else LogProgress()
    try:
        store = open_store(settings)
    except StoreError as error:
        print(f"candlegraph backfill: {error}", file=sys.stderr)
        return 1

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            if stop.is_set():  # a second Ctrl-C: stop at once
                raise KeyboardInterrupt
            log.info("stopping after the page in hand; run the same command to go on")
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt)
        backfill = CandleBackfill(exchange, store, parse_indicators(settings.indicators),
                                  progress=progress, stop=stop)
        try:
            report = await backfill.run(request)
        except BackfillError as error:
            log.error("backfill failed: %s", error)
            return 1
        finally:
            await exchange.close()
        log.info(
            "backfill %s: %d candles stored, %d requests, %d buckets without candles at the"
            " exchange; %.1f s in ccxt, %.1f s converting, %.1f s storing%s",
            "stopped" if report.stopped else "done", report.candles, report.requests,
            report.gaps, report.fetch_s, report.convert_s, report.store_s,
            "" if not report.failed else f"; failed: {'; '.join(report.failed)}",
        )
        return 1 if report.failed else 0

    try:
        return asyncio.run(run())
    finally:
        store.close()
