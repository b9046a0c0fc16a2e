#!/usr/bin/env sh
# Set up the environment if needed, then run the system or the tests.
#   ./dev.sh up [candlegraph up flags]   the whole embedded system in the foreground
#   ./dev.sh test [pytest args]          the test suite
#   ./dev.sh candlegraph COMMAND [flags]  any candlegraph command (backfill, feed, ...)
set -eu
# Paths given to `up` and `candlegraph` (files to import, --data-dir) are the caller's.
caller=$(pwd)
cd "$(dirname "$0")"
here=$(pwd)

PYTHON=${PYTHON:-python3.12}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "dev.sh: Python 3.12 is required; install it or set PYTHON=/path/to/python3.12" >&2
    exit 1
fi

# Install exactly requirements-dev.lock (README, "Locked installs"): a new .venv whenever the
# lock differs from the one installed, so no package of an older lock stays behind; the project
# itself (editable, no dependencies of its own) again whenever pyproject.toml changes.
lock_sum=$(cksum < requirements-dev.lock)
project_sum=$(cksum < pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.lock 2>/dev/null)" != "$lock_sum" ]; then
    rm -rf .venv
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --require-hashes -r requirements-dev.lock
    echo "$lock_sum" > .venv/.lock
fi
if [ "$(cat .venv/.project 2>/dev/null)" != "$project_sum" ]; then
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
    # Fails when pyproject.toml asks for something the lock does not hold: re-lock (README).
    .venv/bin/python -m pip check
    echo "$project_sum" > .venv/.project
fi

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    up) cd "$caller" && exec "$here/.venv/bin/candlegraph" up "$@" ;;
    candlegraph) cd "$caller" && exec "$here/.venv/bin/candlegraph" "$@" ;;
    test) .venv/bin/ruff check --quiet . && .venv/bin/mypy && exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: ./dev.sh up [flags] | ./dev.sh test [pytest args] | ./dev.sh candlegraph COMMAND" >&2; exit 2 ;;
esac
