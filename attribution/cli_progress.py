"""Progress bars for the command line (rich): one bar per pipeline stage, notes printed above.

On a terminal each stage gets a bar (files for ingest, models for the SQL stages, a spinner for
the Python stages). Off a terminal (logs, CI) the same events become plain lines: a stage's
summary when it finishes and every note. ``--quiet`` uses ``SilentReporter`` instead.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from attribution.progress import LineReporter


class RichReporter:
    """A Reporter drawing rich progress bars; use as a context manager around the run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def start(self, stage: str, total: int | None = None) -> None:
        if stage in self.tasks:
            self.progress.update(self.tasks[stage], total=total)
            return
        self.tasks[stage] = self.progress.add_task(stage, total=total, detail="")

    def advance(self, stage: str, detail: str = "") -> None:
        if stage not in self.tasks:
            self.start(stage)
        self.progress.update(self.tasks[stage], advance=1, detail=detail[:60])

    def finish(self, stage: str, detail: str = "") -> None:
        if stage not in self.tasks:
            self.start(stage)
        task = self.progress.tasks[self.tasks[stage]]
        total = task.total if task.total is not None else max(task.completed, 1)
        self.progress.update(self.tasks[stage], total=total, completed=total, detail=detail[:80])

    def note(self, message: str) -> None:
        self.progress.console.print(message, markup=False, soft_wrap=True, highlight=False)


class PlainReporter(LineReporter):
    """Off a terminal: one line per finished stage and per note (no per-step lines)."""

    def advance(self, stage: str, detail: str = "") -> None:
        return None
