"""The lock files against pyproject.toml and against the environment the tests run in.

`./dev.sh` installs requirements-dev.lock and the Dockerfile requirements.lock (README, "Locked
installs"); these checks fail when a requirement changes without a re-lock, when the two locks
disagree, or when the test environment is not the locked one.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def pins(lock: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Each locked package: its version and the hashes it may have."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    # A requirement and its `--hash` options are one logical line, continued with backslashes.
    for line in (ROOT / lock).read_text().replace("\\\n", " ").splitlines():
        if match := _PIN.match(line):
            hashes = frozenset(_HASH.findall(line))
            assert hashes, f"{lock}: {match[1]} has no hash"
            found[canonicalize_name(match[1])] = (match[2], hashes)
    return found


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in listed]


def unmet(required: list[Requirement], locked: dict[str, tuple[str, frozenset[str]]]
          ) -> list[str]:
    return [
        str(req) for req in required
        if canonicalize_name(req.name) not in locked
        or not req.specifier.contains(locked[canonicalize_name(req.name)][0], prereleases=True)
    ]


def test_the_runtime_lock_meets_every_dependency_of_pyproject() -> None:
    assert unmet(requirements(), pins("requirements.lock")) == []


def test_the_dev_lock_meets_every_dependency_and_dev_tool_of_pyproject() -> None:
    assert unmet(requirements() + requirements("dev"), pins("requirements-dev.lock")) == []


def test_the_image_gets_the_same_versions_as_the_tests() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: pin for name, pin in runtime.items() if dev.get(name) != pin} == {}


def test_the_test_environment_is_the_locked_one() -> None:
    installed: dict[str, str] = {
        canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
    }
    locked = pins("requirements-dev.lock")
    assert {name: (version, installed.get(name)) for name, (version, _) in locked.items()
            if installed.get(name) != version} == {}
    assert set(installed) - set(locked) == {"candlegraph"}
