"""How long work reports its progress: a narrow seam, so `flows` stays free of any terminal.

`server.import_progress` shows it as a progress bar on a terminal and as log lines otherwise;
tests and benchmarks pass `NO_PROGRESS`.
"""

from __future__ import annotations

from typing import Protocol


class Phase(Protocol):
    """One stretch of work of known size."""

    def advance(self, amount: int) -> None:
        """`amount` more units done."""
        ...

    def close(self) -> None: ...


class Progress(Protocol):
    def phase(self, name: str, total: int, unit: str) -> Phase:
        """Start a phase of `total` units (`unit` names them: "B" for bytes, "trades")."""
        ...


class _Silent:
    def advance(self, amount: int) -> None:
        pass

    def close(self) -> None:
        pass

    def phase(self, name: str, total: int, unit: str) -> Phase:
        return self


NO_PROGRESS: Progress = _Silent()
