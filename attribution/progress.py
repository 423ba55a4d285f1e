"""How a running pipeline tells people what it is doing, without knowing who listens.

The pipeline calls a ``Reporter``: the CLI's draws rich progress bars, the quiet one (cron) says
nothing, the Prefect flow's writes to the run logger, and a plain callback gets one line per
finished step (tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Reporter(Protocol):
    """Receives the pipeline's progress: stages with a known number of steps, and notes."""

    def start(self, stage: str, total: int | None = None) -> None:
        """A stage begins; ``total`` steps if known (files, models)."""

    def advance(self, stage: str, detail: str = "") -> None:
        """One step of the stage is done."""

    def finish(self, stage: str, detail: str = "") -> None:
        """The stage is done; ``detail`` is a one-line summary."""

    def note(self, message: str) -> None:
        """A line worth printing (ingest tables, warnings, the outcome)."""


class SilentReporter:
    """Says nothing: cron and other unattended runs (errors still reach stderr)."""

    def start(self, stage: str, total: int | None = None) -> None:
        return None

    def advance(self, stage: str, detail: str = "") -> None:
        return None

    def finish(self, stage: str, detail: str = "") -> None:
        return None

    def note(self, message: str) -> None:
        return None


class LineReporter(SilentReporter):
    """Passes every note, step detail and stage summary to ``say`` as one line."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def advance(self, stage: str, detail: str = "") -> None:
        if detail:
            self.say(f"{stage}: {detail}")

    def finish(self, stage: str, detail: str = "") -> None:
        if detail:
            self.say(f"{stage}: {detail}")

    def note(self, message: str) -> None:
        self.say(message)


def as_reporter(progress: Reporter | Callable[[str], None] | None) -> Reporter:
    """Return ``progress`` as a Reporter (a plain callable gets one line per event)."""
    if progress is None:
        return SilentReporter()
    if hasattr(progress, "start") and hasattr(progress, "note"):
        return progress  # type: ignore[return-value]
    return LineReporter(progress)  # type: ignore[arg-type]
