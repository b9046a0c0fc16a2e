"""docker-compose.yml and the Dockerfile, checked without Docker (it does not run here).

The compose file is parsed with PyYAML; its variables are filled in as `docker compose` would,
with test values for the required secrets. Every command a service runs is run through the
real `candlegraph` CLI with `--help`, and its environment through the real settings.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.ilp import sender_for
from server.cli import _parser
from server.settings import ENVIRONMENT, PREFIX, Settings

ROOT = Path(__file__).parent.parent
CANDLEGRAPH = Path(sys.executable).parent / "candlegraph"
PROJECT_SERVICES = {"server", "flow", "feed", "simulator", "worker"}
SECRETS = {"QUESTDB_PASSWORD": "s3cret-test", "GRAFANA_PASSWORD": "s3cret-grafana"}

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Fill `${VAR}`, `${VAR:-default}` and `${VAR:?message}` as docker compose does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op in {":?", "?"}:
            raise KeyError(f"{name} is required: {arg}")
        return arg if op in {":-", "-"} else ""

    return _VARIABLE.sub(fill, value)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw["services"], SECRETS)


def test_the_system_is_nats_questdb_and_four_services_from_the_project_image(
    services: dict[str, Any],
) -> None:
    assert set(services) == {"nats", "questdb", "prometheus", "grafana"} | PROJECT_SERVICES
    for name in PROJECT_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == "candlegraph:latest"


def test_nats_runs_jetstream_on_a_volume_with_a_health_check(raw: dict[str, Any]) -> None:
    nats = raw["services"]["nats"]
    assert "-js" in nats["command"]
    assert nats["command"][nats["command"].index("-sd") + 1] == "/data"
    assert any(v.split(":")[1] == "/data" for v in nats["volumes"])
    assert nats["volumes"][0].split(":")[0] in raw["volumes"]
    assert "healthz" in " ".join(nats["healthcheck"]["test"])
    assert re.fullmatch(r"nats:\d+\.\d+\.\d+-alpine", nats["image"])


def test_questdb_is_a_pinned_9x_image_on_a_volume_with_a_health_check(
    raw: dict[str, Any],
) -> None:
    questdb = raw["services"]["questdb"]
    assert re.fullmatch(r"questdb/questdb:9\.\d+\.\d+", questdb["image"])
    assert questdb["volumes"][0].split(":")[1] == "/var/lib/questdb"
    assert questdb["volumes"][0].split(":")[0] in raw["volumes"]
    assert questdb["healthcheck"]["test"][0] == "CMD"


def test_the_feed_is_an_exchange_feed_and_the_simulator_a_profile(
    services: dict[str, Any],
) -> None:
    command = services["feed"]["command"]
    assert command[:3] == ["feed", "--exchange", "binance"]
    assert "profiles" not in services["feed"]
    assert services["simulator"]["profiles"] == ["simulator"]


def test_prometheus_and_grafana_are_pinned_and_mount_the_repos_configuration(
    raw: dict[str, Any],
) -> None:
    prometheus, grafana = raw["services"]["prometheus"], raw["services"]["grafana"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert source in raw["volumes"] or (ROOT / source).exists(), volume
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_PASSWORD:\?[^}]+\}", password)


def test_secrets_come_from_the_environment_and_are_required(raw: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for value in raw["services"]["questdb"]["environment"].values():
        if "PASSWORD" in str(value) or "password" in str(value):
            assert re.fullmatch(r"\$\{QUESTDB_PASSWORD:\?[^}]+\}", value)
    assert "quest@" not in text and ":quest" not in text  # no default password
    with pytest.raises(KeyError, match="QUESTDB_PASSWORD is required"):
        interpolate(raw["services"], {})


def test_published_ports_bind_to_loopback_only(services: dict[str, Any]) -> None:
    published = [(n, p) for n, s in services.items() for p in s.get("ports", [])]
    assert published  # the GraphQL server at least
    assert ("server", "127.0.0.1:8000:8000") in published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_services_wait_for_healthy_dependencies(services: dict[str, Any]) -> None:
    for name in PROJECT_SERVICES:
        depends = services[name]["depends_on"]
        assert "nats" in depends
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}
            assert "healthcheck" in services[dependency]
    assert "questdb" in services["server"]["depends_on"]
    assert "questdb" in services["flow"]["depends_on"]
    assert {"nats", "questdb"} <= set(services["worker"]["depends_on"])


def test_backtest_workers_scale_without_clashing(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"][0] == "worker"
    assert "container_name" not in worker and "ports" not in worker


def test_every_candlegraph_variable_is_a_setting_and_selects_questdb(
    services: dict[str, Any],
) -> None:
    for name in PROJECT_SERVICES:
        env = services[name]["environment"]
        unknown = [k for k in env if k.startswith(PREFIX) and k[len(PREFIX):].lower()
                   not in ENVIRONMENT]
        assert unknown == []
        settings = Settings.from_env(env)
        assert settings.store == "questdb"
        assert settings.nats_url == "nats://nats:4222"
        assert settings.questdb_pg_url == "postgresql://admin:s3cret-test@questdb:8812/qdb"
        sender_for(settings.questdb_url).close(flush=False)  # a URL the store accepts


@pytest.mark.parametrize("name", sorted(PROJECT_SERVICES))
def test_every_command_is_a_real_candlegraph_subcommand(
    services: dict[str, Any], name: str
) -> None:
    command = services[name]["command"]
    _parser().parse_args(command)  # every flag exists and parses (exits with status 2 if not)
    result = subprocess.run(
        [str(CANDLEGRAPH), *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: candlegraph {command[0]}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines if line and not line.startswith("#")
    ]


def test_the_dockerfile_installs_the_locked_dependencies_then_the_project() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    steps = dockerfile_instructions()
    python = (ROOT / ".python-version").read_text().strip()
    assert ("ARG", f"PYTHON_VERSION={python}") in steps
    assert any(k == "FROM" and v.startswith("python:${PYTHON_VERSION}") for k, v in steps)
    copied = {v.split()[0] for k, v in steps if k == "COPY"} | {
        part for k, v in steps if k == "COPY" for part in v.split()[:-1]
    }
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    assert packages | {"pyproject.toml", pyproject["project"]["readme"], "requirements.lock"} <= (
        copied
    )
    (install,) = [v for k, v in steps if k == "RUN" and "pip install" in v]
    locked = install.index("pip install --require-hashes -r requirements.lock")
    assert locked < install.index("pip install --no-deps .")
    (script,) = pyproject["project"]["scripts"]
    assert ("ENTRYPOINT", f'["{script}"]') in steps


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", ".git", "tests"} <= set(ignored)
