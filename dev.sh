#!/usr/bin/env sh
# Set up the environment if needed, then run the system or the tests.
#   ./dev.sh up [candlegraph up flags]   the whole embedded system in the foreground
#   ./dev.sh test [pytest args]          the test suite
#   ./dev.sh candlegraph COMMAND [flags]  any candlegraph command (backfill, feed, ...)
set -eu
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.12}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "dev.sh: Python 3.12 is required; install it or set PYTHON=/path/to/python3.12" >&2
    exit 1
fi

# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    up) exec .venv/bin/candlegraph up "$@" ;;
    candlegraph) exec .venv/bin/candlegraph "$@" ;;
    test) .venv/bin/ruff check --quiet . && exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: ./dev.sh up [flags] | ./dev.sh test [pytest args] | ./dev.sh candlegraph COMMAND" >&2; exit 2 ;;
esac
