"""Why a file cannot be imported. Every error names the file.

    FileImportError          the file cannot be opened or read
    ├── FormatError          its format cannot be told, is ambiguous, or does not match
    └── MostlyBadError       more than the allowed share of its rows are bad
"""

from __future__ import annotations

from pathlib import Path


class FileImportError(Exception):
    """A file that cannot be imported, and why."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


class FormatError(FileImportError):
    """The file's format cannot be told from its content, is ambiguous, or is not the one
    asked for."""


class MostlyBadError(FileImportError):
    """Too many of the file's rows are bad for the rest to be trusted."""
