"""The flow's settings: defaults, validation, and recovery data tied to the worker count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from market.indicators import DEFAULT_INDICATORS_TEXT
from market.timeframes import STANDARD_TIMEFRAMES
from server.flow_process import recovery_dir
from server.settings import Settings, SettingsError


def test_the_flow_builds_every_timeframe_and_the_default_indicators_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.timeframes == STANDARD_TIMEFRAMES
    assert settings.indicators == DEFAULT_INDICATORS_TEXT
    assert (settings.forming_interval_ms, settings.spike_sigmas) == (250, 0.0)
    assert (settings.flow_workers, settings.flow_recovery) == (1, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANDLEGRAPH_INDICATORS": "sma:20,nope"}, "indicators: unknown indicator 'nope'"),
        ({"CANDLEGRAPH_INDICATORS": "rsi:0"}, "indicators: rsi: parameter 'length'"),
        ({"CANDLEGRAPH_FLOW_WORKERS": "0"}, "flow_workers must be 1 to 64"),
        ({"CANDLEGRAPH_SPIKE_SIGMAS": "-1"}, "spike_sigmas must be >= 0"),
        ({"CANDLEGRAPH_FLOW_RECOVERY": "maybe"}, "CANDLEGRAPH_FLOW_RECOVERY='maybe'"),
        ({"CANDLEGRAPH_FLOW_ADDRESSES": "a:1,b:2", "CANDLEGRAPH_FLOW_PROCESS_ID": "2"},
         "flow_process_id must index flow_addresses"),
    ],
)
def test_bad_flow_settings_say_what_was_expected(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_recovery_data_of_another_worker_count_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = recovery_dir(settings, 0, 2)
    assert [p.name for p in first.iterdir()] == ["part-0.sqlite3"]
    assert recovery_dir(settings, 1, 2).name == "process-1-of-2"
    with pytest.raises(SettingsError, match=r"another number of workers \(process-0-of-2"):
        recovery_dir(settings, 0, 1)


def test_the_flow_command_reports_a_recovery_mismatch_and_exits(tmp_path: Path) -> None:
    recovery_dir(Settings(data_dir=tmp_path), 0, 3)
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "flow", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin", "CANDLEGRAPH_NATS_URL": "nats://127.0.0.1:1"},
    )
    assert result.returncode == 2 and "another number of workers" in result.stderr
