"""The CLI in a child process, on a warehouse and report folder of a test (faults, concurrency)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from attribution.faults import FAULT_ENV


@dataclass(frozen=True)
class Place:
    """A warehouse file and its report folder."""

    warehouse: Path
    report: Path

    @classmethod
    def at(cls, folder: Path) -> Place:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / "w.duckdb", folder / "report")

    def copy_to(self, folder: Path) -> Place:
        copy = Place.at(folder)
        shutil.copyfile(self.warehouse, copy.warehouse)
        if self.report.exists():
            shutil.copytree(self.report, copy.report)
        return copy


def cli_child(
    landing: Path,
    place: Place,
    *args: str,
    env: dict[str, str] | None = None,
    quiet: bool = True,
    program: tuple[str, ...] = ("-m", "attribution.cli"),
) -> dict:
    """Return the ``subprocess`` arguments of ``attribution <args>`` on ``place`` (settings from
    the environment only, no PNG images, no expectations; ``env`` added; ``program`` replaces
    ``-m attribution.cli``, e.g. by a wrapper script)."""
    environment = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    environment.update({"ATTRIBUTION_REPORT_PNG": "never", **(env or {})})
    flags = ["--landing", str(landing), "--warehouse", str(place.warehouse)]
    flags += ["--out", str(place.report), "--no-expectations"] + ["--quiet"] * quiet
    return {
        "args": [sys.executable, *program, *args, *flags],
        "env": environment,
        "cwd": place.warehouse.parent,  # no pyproject.toml / attribution.toml settings
        "text": True,
    }


def run_cli(landing: Path, place: Place, *args: str, **options) -> subprocess.CompletedProcess:
    """Run ``attribution <args>`` in a child process to its end (see ``cli_child``)."""
    return subprocess.run(
        **cli_child(landing, place, *args, **options), capture_output=True, timeout=600
    )


def start_cli(landing: Path, place: Place, *args: str, **options) -> subprocess.Popen:
    """Start ``attribution <args>`` in a child process (see ``cli_child``)."""
    return subprocess.Popen(
        **cli_child(landing, place, *args, **options),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
