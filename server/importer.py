"""`candlegraph import`: trade and candle files into the store, or replayed on NATS.

Composition only: paths and globs expanded, the market checked, one import at a time per
data directory (a lock file), the store or NATS opened from settings, progress shown, and a
summary printed. What an import does is in `flows.trade_import`, `flows.candle_import` and
`flows.replay`; how files are read in `flows.files`.

State of imports lives under `DATA/imports/`: `trades/` (every imported trade, by market and
day: `flows.trade_archive`), `work/` (rows read and not yet built, removed at the end) and
`lock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from db.store import StoreError
from flows.files.bad_rows import BadRows
from flows.files.columns import ColumnsError, parse_columns
from flows.files.errors import FileImportError
from flows.files.layouts import FORMATS
from flows.files.reader import ReadOptions, SourceFile, inspect_file
from flows.progress import Progress
from flows.trade_archive import TradeArchive
from flows.trade_import import ImportSetupError, Market
from market.indicators import parse_indicators
from market.messages import EXCHANGE_PATTERN, SYMBOL_PATTERN
from market.timeframes import Timeframe, TimeframeError, parse_timeframes
from server.import_progress import progress_for
from server.settings import Settings

if TYPE_CHECKING:
    from flows.replay_check import FlowVerdict

log = logging.getLogger("candlegraph.import")


class ImportUsageError(ValueError):
    """Arguments `candlegraph import` cannot work with."""


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """The command's own arguments (settings come separately)."""

    paths: tuple[str, ...]
    exchange: str
    symbol: str
    format: str | None = None
    columns: str = ""
    timeframe: str | None = None
    replay: bool = False
    speed: str = "max"


def run_import(
    settings: Settings, request: ImportRequest, *, out: TextIO = sys.stdout,
    err: TextIO = sys.stderr, progress: Progress | None = None,
) -> int:
    """Run one import; return the exit code (0 done, 1 failed, 2 bad arguments)."""
    try:
        options, speed = _options(request)
        paths = expand(request.paths)
        sources = [inspect_file(path, options) for path in paths]
        kinds = {s.kind for s in sources}
        if len(kinds) > 1:
            raise ImportUsageError(
                "the files hold trades and candles; import each kind on its own"
            )
        if kinds == {"trades"} and request.timeframe is not None:
            raise ImportUsageError(
                "--timeframe is for candle files; trades are aggregated into every"
                " configured timeframe (CANDLEGRAPH_TIMEFRAMES)"
            )
    except (ImportUsageError, FileImportError) as error:
        print(f"candlegraph import: {error}", file=err)
        return 2
    market = Market(request.exchange, request.symbol)
    progress = progress or progress_for(err)
    try:
        with _import_lock(settings.data_dir):
            if request.replay:
                return _replay(settings, sources, market, speed, progress, out)
            return _store(settings, sources, market, progress, out)
    except (FileImportError, ImportUsageError, ImportSetupError, StoreError) as error:
        print(f"candlegraph import: {error}", file=err)
        return 1
    except KeyboardInterrupt:
        print("candlegraph import: interrupted; run the same command again to finish: what is"
              " already stored stays, and is rebuilt the same", file=err)
        return 130


def expand(patterns: Sequence[str]) -> list[Path]:
    """Paths and globs (`*`, `?`, `[...]`, `**`) as distinct files in a stable order; a glob
    that matches nothing is an error."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise ImportUsageError(f"{pattern} matches no file")
            for match in matches:
                found.setdefault(Path(match).resolve(), None)
        else:
            found.setdefault(Path(pattern).resolve(), None)
    if not found:
        raise ImportUsageError("give at least one file to import")
    return list(found)


def _options(request: ImportRequest) -> tuple[ReadOptions, float | None]:
    if not EXCHANGE_PATTERN.match(request.exchange):
        raise ImportUsageError(
            f"--exchange must be lower case [a-z0-9_], e.g. binance; got {request.exchange!r}"
        )
    if not SYMBOL_PATTERN.match(request.symbol):
        raise ImportUsageError(
            f"--symbol must be BASE-QUOTE in upper case, e.g. BTC-USDT; got {request.symbol!r}"
        )
    if request.format is not None and request.format not in FORMATS:
        raise ImportUsageError(
            f"unknown --format {request.format!r}; formats: {', '.join(FORMATS)}"
        )
    try:
        columns = parse_columns(request.columns)
    except ColumnsError as error:
        raise ImportUsageError(str(error)) from error
    timeframe: Timeframe | None = None
    if request.timeframe is not None:
        try:
            timeframe = Timeframe.parse(request.timeframe)
        except TimeframeError as error:
            raise ImportUsageError(f"--timeframe: {error}") from error
    speed: float | None = None
    if request.speed != "max":
        try:
            speed = float(request.speed)
        except ValueError:
            speed = -1.0
        if not speed > 0 or speed != speed or speed == float("inf"):
            raise ImportUsageError(f"--speed must be a number > 0 or max, got {request.speed!r}")
    if not request.replay and request.speed != "max":
        raise ImportUsageError("--speed paces a replay: use it with --replay")
    return ReadOptions(request.format, columns, request.symbol, timeframe), speed


@contextlib.contextmanager
def _import_lock(data_dir: Path) -> Iterator[None]:
    folder = data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ImportUsageError(
                f"another import is running on {data_dir}; wait for it to finish"
            ) from None
        yield


def _store(
    settings: Settings, sources: list[SourceFile], market: Market, progress: Progress,
    out: TextIO,
) -> int:
    from flows.candle_import import import_candles
    from flows.trade_import import import_trades
    from server.stores import open_store

    indicators = parse_indicators(settings.indicators)
    work = settings.data_dir / "imports" / "work"
    store = open_store(settings)
    try:
        if sources[0].kind == "trades":
            timeframes = parse_timeframes(list(settings.timeframes))
            report = import_trades(
                sources, store, market=market, timeframes=timeframes, indicators=indicators,
                archive=TradeArchive(settings.data_dir / "imports" / "trades"),
                work_dir=work, progress=progress,
            )
            print(
                f"imported {_count(report.trades_new, 'new trade')} of {market.exchange}:"
                f"{market.symbol} ({report.trades_read:,} read from"
                f" {_count(report.files, 'file')}, {_count(report.duplicates, 'repeated id')}"
                f" dropped) into {_count(report.candles, 'candle')} of"
                f" {','.join(tf.name for tf in timeframes)}, with"
                f" {_count(report.indicator_rows, 'row')} of indicators", file=out,
            )
            _print_bad(report.bad_rows, out)
            return 0
        configured = set(settings.timeframes)
        for source in sources:
            assert source.timeframe is not None
            if source.timeframe.name not in configured:
                raise ImportUsageError(
                    f"{source.path}: holds {source.timeframe.name} candles, which are not among"
                    f" the configured timeframes ({','.join(settings.timeframes)}); add it to"
                    " CANDLEGRAPH_TIMEFRAMES to import them"
                )
        creport = import_candles(
            sources, store, market=market, indicators=indicators, work_dir=work,
            progress=progress,
        )
        print(
            f"imported {_count(creport.candles, 'candle')} of {market.exchange}:"
            f"{market.symbol} {','.join(creport.timeframes)} ({creport.candles_read:,} read"
            f" from {_count(creport.files, 'file')}), with"
            f" {_count(creport.indicator_rows, 'row')} of indicators",
            file=out,
        )
        _print_bad(creport.bad_rows, out)
        return 0
    finally:
        store.close()


def _replay(
    settings: Settings, sources: list[SourceFile], market: Market, speed: float | None,
    progress: Progress, out: TextIO,
) -> int:
    if sources[0].kind != "trades":
        raise ImportUsageError("--replay publishes trades; these files hold candles")

    async def run() -> int:
        from flows.nats_events import connect, finish
        from flows.publisher import publish_trades
        from flows.replay import replay_files
        from flows.replay_check import dead_letter_mark, flow_verdict
        from flows.streams import ensure_streams
        from flows.subjects import trades_subject

        nc = await connect(settings.nats_url, name="candlegraph-replay")
        subject = trades_subject(market.exchange, market.symbol)
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            task = asyncio.current_task()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                if task is not None:
                    loop.add_signal_handler(signum, task.cancel)
            mark = await dead_letter_mark(js)
            report = await replay_files(
                sources, partial(publish_trades, js), market=market, speed=speed,
                work_dir=settings.data_dir / "imports" / "work", progress=progress,
            )
            print(
                f"replayed {report.published:,} trades of {market.exchange}:{market.symbol} in"
                f" {report.messages:,} messages on {subject}"
                f" ({report.duplicates:,} repeated ids dropped)", file=out,
            )
            if report.bad_rows is not None:
                _print_bad(report.bad_rows, out)
            verdict = await flow_verdict(js, subject, mark)
        finally:
            await finish(nc)
        return _print_verdict(verdict, out)

    try:
        return asyncio.run(run())
    except asyncio.CancelledError:
        print("candlegraph import: replay stopped", file=sys.stderr)
        return 1


def _print_verdict(verdict: FlowVerdict, out: TextIO) -> int:
    """Say what the flow made of a replay (`flows.replay_check`); 1 if it dead-lettered any."""
    if not verdict.flowing:
        print("no flow reads this NATS server's trades yet; they wait in its stream", file=out)
        return 0
    if not verdict.acked:
        print("the flow has not taken them all yet (see its log)", file=out)
        return 0
    if not verdict.dead_letters:
        print("the flow took every one", file=out)
        return 0
    reasons = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(verdict.reasons.items()))
    print(f"the flow dead-lettered {'at least ' if verdict.capped else ''}"
          f"{_count(verdict.dead_letters, 'trade')} of them ({reasons})", file=out)
    if verdict.first is not None:
        print(f"  the first: {verdict.first.reason}: {verdict.first.detail}", file=out)
    if "late" in verdict.reasons:
        print("  its event time was ahead of these trades, as when a simulator or a live feed"
              " feeds it too: replay into `candlegraph up --no-feed` with a data directory of"
              " its own", file=out)
    return 1


def _print_bad(bad: BadRows, out: TextIO) -> None:
    if not bad.total:
        return
    files = ", ".join(f"{path}: {count.bad:,}" for path, count in bad.files.items() if count.bad)
    print(f"{_count(bad.total, 'bad row')} not imported ({files}); the first:", file=out)
    for row in bad.shown:
        print(f"  {row}", file=out)


def _count(count: int, noun: str) -> str:
    """`1 file`, `2,048 files`."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"
