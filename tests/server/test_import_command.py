"""`candlegraph import`: arguments checked before anything runs, one import per data
directory, progress as a bar or log lines, and an import SIGKILLed midway that, run again,
leaves the store of a clean run."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from db.candle_blocks import RECORD
from market.timeframes import parse_timeframes
from server.import_progress import LogProgress, TerminalProgress, progress_for
from server.importer import ImportRequest, ImportUsageError, expand, run_import
from server.settings import Settings
from tests.conditions import wait_until
from tests.flows.files.layouts import S, binance_klines, binance_trades, sample_trades, write
from tests.flows.imports import stored_candles, stored_indicators
from tests.walks import minute_walk


def run(tmp_path: Path, *paths: str, **fields: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    request = ImportRequest(tuple(paths), fields.pop("exchange", "binance"),  # type: ignore[arg-type]  # test overrides: each a real field
                            fields.pop("symbol", "BTC-USDT"), **fields)  # type: ignore[arg-type]  # test overrides: each a real field
    settings = Settings(data_dir=tmp_path / "data", timeframes=("1s", "1m"))
    code = run_import(settings, request, out=out, err=err, progress=LogProgress())
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("fields", "message"), [
    ({"symbol": "btcusdt"}, "--symbol must be BASE-QUOTE"),
    ({"exchange": "Binance"}, "--exchange must be lower case"),
    ({"format": "csv"}, "unknown --format 'csv'"),
    ({"columns": "when=Time"}, "unknown field 'when'"),
    ({"speed": "60"}, "--speed paces a replay"),
    ({"replay": True, "speed": "-1"}, "--speed must be a number > 0 or max"),
    ({"timeframe": "1m"}, "--timeframe is for candle files"),
])
def test_bad_arguments_exit_2_with_what_is_wrong(
    fields: dict[str, object], message: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "t.csv", binance_trades(sample_trades(5)))
    code, _, err = run(tmp_path, str(path), **fields)
    assert code == 2 and message in err
    assert not (tmp_path / "data").exists()


def test_globs_expand_to_distinct_files_and_a_glob_matching_nothing_is_an_error(
    tmp_path: Path,
) -> None:
    for day in ("02", "01"):
        write(tmp_path / f"BTCUSDT-trades-2024-03-{day}.csv", "")
    files = expand([str(tmp_path / "*-03-0?.csv"), str(tmp_path / "BTCUSDT-trades-2024-03-01.csv")])
    assert [p.name for p in files] == ["BTCUSDT-trades-2024-03-01.csv",
                                       "BTCUSDT-trades-2024-03-02.csv"]
    with pytest.raises(ImportUsageError, match="matches no file"):
        expand([str(tmp_path / "*.zip")])


def test_a_file_that_cannot_be_read_exits_2_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.csv", "hello,world\nthis,is not data\n")
    code, _, err = run(tmp_path, str(path))
    assert code == 2 and "notes.csv" in err and "no column for" in err


def test_candles_of_a_timeframe_not_configured_are_refused(tmp_path: Path) -> None:
    hourly = minute_walk(30, timeframe="1h", step_ns=3600 * S, start_ns=1_700_002_800 * S)
    path = write(tmp_path / "BTCUSDT-1h-2023-11.csv", binance_klines(hourly, width_ns=3600 * S))
    code, _, err = run(tmp_path, str(path))
    assert code == 1 and "1h candles, which are not among the configured timeframes" in err


def test_an_import_prints_what_it_stored_and_its_bad_rows(tmp_path: Path) -> None:
    text = binance_trades(sample_trades(50)).replace("62", "x2", 1)
    path = write(tmp_path / "BTCUSDT-trades-2024-03-01.csv", text, "zip")
    code, out, _ = run(tmp_path, str(path))
    assert code == 0
    assert "imported 49 new trades of binance:BTC-USDT (49 read from 1 file," in out
    assert "1 bad row not imported" in out and ".zip:2: the price is missing" in out


def test_progress_is_a_bar_on_a_terminal_and_log_lines_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    assert isinstance(progress_for(terminal), TerminalProgress)
    bar = progress_for(terminal).phase("reading", 2048, "B")
    bar.advance(2048)
    bar.close()
    assert "reading: 100%" in terminal.getvalue()
    assert isinstance(progress_for(io.StringIO()), LogProgress)

    now = [0.0]
    phase = LogProgress(interval_s=10, clock=lambda: now[0]).phase("building candles", 400,
                                                                   "trades")
    with caplog.at_level(logging.INFO, logger="candlegraph.import"):
        for _ in range(4):
            now[0] += 6
            phase.advance(100)
        phase.close()
    assert [r.getMessage() for r in caplog.records] == [  # at 12 s, 24 s, and the end
        "building candles: 200 of 400 trades (50%), 17 trades/s, about 12 s left",
        "building candles: 400 of 400 trades (100%), 17 trades/s, about 0 s left",
        "building candles: done, 400 of 400 trades (100%), 17 trades/s",
    ]


def _candle_count(data: Path) -> int:
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
        sqlite3.connect(f"file:{data / 'candlegraph.sqlite'}?mode=ro", uri=True)
    ) as db:
        # Not the `candles` view: it takes every block apart, too slow to poll.
        rows = db.execute("SELECT count(*) FROM candle_rows").fetchone()[0]
        blocks = db.execute("SELECT coalesce(sum(length(records)), 0) FROM candle_blocks")
        return int(rows) + int(blocks.fetchone()[0]) // RECORD.itemsize
    return 0


def test_an_import_killed_midway_and_run_again_leaves_the_store_of_a_clean_run(
    tmp_path: Path,
) -> None:
    # Ten minutes of one day, then the next two and a half days (130k candles): a bucket
    # per day, so the kill lands once the first is stored, while the others are being built
    # (about 0.15 s here). EMA and OBV carry state from the first candle on, so a rerun warmed
    # in any other way would show.
    trades = sample_trades(240_000, mean_gap_ms=1000)
    path = write(tmp_path / "BTCUSDT-trades-2024-03.csv", binance_trades(trades), "zip")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update(CANDLEGRAPH_TIMEFRAMES="1s,1m", CANDLEGRAPH_INDICATORS="ema:20,obv",
               CANDLEGRAPH_LOG_LEVEL="WARNING")

    def command(data: Path) -> list[str]:
        return [sys.executable, "-m", "server.cli", "import", str(path), "--exchange",
                "binance", "--symbol", "BTC-USDT", "--data-dir", str(data)]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: _candle_count(killed) > 0 or proc.poll() is not None, timeout_s=60,
                   what="the first day's candles")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the import ended before it could be killed"
    partial = _candle_count(killed)
    assert subprocess.run(command(killed), env=env, stdout=subprocess.DEVNULL).returncode == 0
    clean = tmp_path / "clean"
    assert subprocess.run(command(clean), env=env, stdout=subprocess.DEVNULL).returncode == 0

    timeframes = parse_timeframes("1s,1m")
    candles = stored_candles(clean, timeframes)
    assert 0 < partial < len(candles)
    assert stored_candles(killed, timeframes) == candles
    assert stored_indicators(killed, timeframes) == stored_indicators(clean, timeframes)
