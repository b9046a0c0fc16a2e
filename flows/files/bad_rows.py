"""Bad rows: counted per file with line and reason, a few kept to show, none imported.

A file is *mostly bad* when more than half of its rows are bad. That is checked when the
file ends, and earlier, after every chunk, once `EARLY_ROWS` rows have been read, so a file
of the wrong kind stops soon. A mostly bad file stops the import with `MostlyBadError`
naming it; since files are read before anything is written, nothing of that import is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from flows.files.errors import MostlyBadError

log = logging.getLogger(__name__)

#: A file with more than this share of bad rows is mostly bad.
MOSTLY_BAD_SHARE = 0.5
#: Rows read before the share is checked mid-file.
EARLY_ROWS = 10_000
#: Bad rows logged one by one (per import); the rest are only counted.
SHOWN = 10


@dataclass(frozen=True, slots=True)
class BadRow:
    """One row not imported: its file, its line (1-based; Parquet: its row) and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(slots=True)
class FileCount:
    rows: int = 0
    bad: int = 0


@dataclass(slots=True)
class BadRows:
    """The bad rows of one import: counts per file and the first `SHOWN` of them."""

    shown: list[BadRow] = field(default_factory=list)
    files: dict[str, FileCount] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(count.bad for count in self.files.values())

    def add(self, path: str, rows: int, bad: Sequence[BadRow]) -> None:
        """Count `rows` rows read from `path`, of which `bad` were bad; log the first ones."""
        count = self.files.setdefault(path, FileCount())
        count.rows += rows
        count.bad += len(bad)
        for row in bad:
            if len(self.shown) >= SHOWN:
                break
            self.shown.append(row)
            log.warning("bad row, not imported: %s", row)

    def check(self, path: str, *, at_end: bool) -> None:
        """Raise `MostlyBadError` if the file is mostly bad so far (see the module docstring)."""
        count = self.files.get(path)
        if count is None or count.rows == 0 or (not at_end and count.rows < EARLY_ROWS):
            return
        if count.bad > MOSTLY_BAD_SHARE * count.rows:
            example = next((r for r in self.shown if r.path == path), None)
            hint = f"; for example line {example.line}: {example.reason}" if example else ""
            raise MostlyBadError(
                path,
                f"{count.bad:,} of its first {count.rows:,} rows are bad (more than"
                f" {MOSTLY_BAD_SHARE:.0%}), so it is not imported{hint}",
            )
