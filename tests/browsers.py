"""Debian's chromium for browser tests, driven by Playwright through `executable_path`
(Playwright's own browser download is not used). `.ci/run` installs it when it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str | None:
    for candidate in CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The chromium binary; a test without it skips on a laptop, and fails in CI."""
    binary = chromium_binary()
    if binary is None:
        message = "no chromium binary found (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it, so CI must have it")
        pytest.skip(message)
    return binary
