from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError


def test_defaults_run_the_embedded_setup() -> None:
    settings = Settings.from_env({})
    assert settings.store == "embedded"
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert settings.store_path == Path("data/candlegraph.sqlite")


def test_environment_variables_are_typed() -> None:
    settings = Settings.from_env({
        "CANDLEGRAPH_PORT": "9001", "CANDLEGRAPH_TIMEFRAMES": "1m,1s,5m",
        "CANDLEGRAPH_SIM_SYMBOLS": "BTC-USDT, ETH-USDT", "PATH": "/bin",
    })
    assert settings.port == 9001
    assert settings.timeframes == ("1s", "1m", "5m")
    assert settings.sim_symbols == ("BTC-USDT", "ETH-USDT")


def test_an_unknown_variable_is_an_error_that_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError, match=r"unknown setting CANDLEGRAPH_PROT.*CANDLEGRAPH_PORT"):
        Settings.from_env({"CANDLEGRAPH_PROT": "1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANDLEGRAPH_PORT": "eighty"}, "CANDLEGRAPH_PORT='eighty'"),
        ({"CANDLEGRAPH_PORT": "70000"}, "port must be a TCP port"),
        ({"CANDLEGRAPH_TIMEFRAMES": "1x"}, "TIMEFRAMES='1x'"),
        ({"CANDLEGRAPH_STORE": "mongo"}, "store must be"),
        ({"CANDLEGRAPH_EXCHANGE_SYMBOLS": "BTCUSDT"}, "BASE/QUOTE"),
        ({"CANDLEGRAPH_EXCHANGE_CONFIG": "[1]"}, "exchange_config must be a JSON object"),
        ({"CANDLEGRAPH_FEED_STALL_S": "0"}, "feed_stall_s must be > 0"),
    ],
)
def test_bad_values_say_what_was_expected(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_settings_survive_the_trip_to_a_child_process() -> None:
    settings = Settings(port=9100, timeframes=("1s", "5m"), sim_rate=50.0)
    assert Settings.from_env(settings.to_env()) == settings


def test_the_strategy_path_holds_directories_separated_as_in_path(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()

    settings = Settings.from_env({"CANDLEGRAPH_STRATEGY_PATH": f"{one}{os.pathsep}{two}"})

    assert settings.strategy_path == (one, two)
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(SettingsError, match=r"strategy_path: '.*/three' is not a directory"):
        Settings.from_env({"CANDLEGRAPH_STRATEGY_PATH": str(tmp_path / "three")})


@pytest.mark.parametrize(
    "command", ["up", "serve", "flow", "simulate", "feed", "backfill", "schema"]
)
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: candlegraph" in result.stdout


def test_a_bad_setting_stops_the_cli_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "schema"], capture_output=True, text=True,
        env={"CANDLEGRAPH_PORT": "x", "PATH": "/usr/bin"},
    )
    assert result.returncode == 2 and "CANDLEGRAPH_PORT='x'" in result.stderr
