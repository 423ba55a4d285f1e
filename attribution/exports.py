"""Write the report's files: CSV and Parquet of floored tables, PNG images of charts, manifest.

PNG images use kaleido with a Chromium that is already installed (Debian: ``apt-get install
chromium``). Nothing here downloads: kaleido's own Chrome download is never called, MathJax (which
kaleido would fetch from a CDN) is turned off, and plotly.js comes from the installed plotly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

DATA_DIR = "data"
IMAGES_DIR = "images"
MANIFEST = "manifest.json"
MANIFEST_MARKER: dict[str, str] = {"generator": "attribution report"}
IMAGE_WIDTH, IMAGE_HEIGHT = 1100, 500
BROWSER_NAMES: tuple[str, ...] = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)
INSTALL_HINT = (
    "install Debian's Chromium (`apt-get update && apt-get install -y chromium`) or point "
    "BROWSER_PATH at a Chrome/Chromium binary"
)


class ChromiumNotFound(FileNotFoundError):
    """PNG images were required (report_png = always) but no Chromium is installed."""


@dataclass(frozen=True)
class ImageResult:
    """PNG files written (empty when skipped), why they were skipped, and the seconds taken."""

    paths: list[Path]
    note: str | None
    seconds: float


def write_table_exports(folder: Path, tables: dict[str, pl.DataFrame]) -> list[Path]:
    """Write ``<name>.csv`` and ``<name>.parquet`` of every table with columns; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, frame in tables.items():
        if frame.width == 0:
            continue
        csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
        frame.write_csv(csv)
        frame.write_parquet(parquet)
        written += [csv, parquet]
    return written


def find_chromium() -> str | None:
    """Return a Chrome/Chromium binary: ``BROWSER_PATH`` if it is executable, else from PATH."""
    override = os.environ.get("BROWSER_PATH")
    if override and os.access(override, os.X_OK):
        return override
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def write_chart_images(
    figures: dict[str, go.Figure], folder: Path, mode: str, browser: str | None = None
) -> ImageResult:
    """Write ``<chart id>.png`` of every figure in one browser session, as ``mode`` says.

    ``mode``: ``never`` skips; ``auto`` skips with a note when no Chromium is found; ``always``
    raises ``ChromiumNotFound`` then.
    """
    if mode == "never":
        return ImageResult([], "turned off (report_png = never)", 0.0)
    browser = browser or find_chromium()
    if browser is None:
        if mode == "always":
            raise ChromiumNotFound(f"report_png = always but no Chromium was found: {INSTALL_HINT}")
        return ImageResult([], f"no Chromium found; {INSTALL_HINT}", 0.0)
    import kaleido

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{chart_id}.png" for chart_id in figures]
    specs = [
        {
            "fig": figure.to_dict(),
            "path": path,
            "opts": {"format": "png", "width": IMAGE_WIDTH, "height": IMAGE_HEIGHT, "scale": 1},
        }
        for figure, path in zip(figures.values(), paths, strict=True)
    ]
    started = time.perf_counter()
    # one browser for the whole batch; no MathJax (it would come from a CDN)
    kaleido.write_fig_from_object_sync(specs, kopts={"path": browser, "mathjax": False, "n": 1})
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"kaleido wrote no image for {missing}")
    return ImageResult(paths, None, round(time.perf_counter() - started, 2))


def manifest(
    *,
    base: Path,
    tables: dict[str, pl.DataFrame],
    exports: list[Path],
    images: ImageResult,
    suppressed_cells: dict[str, int],
    context: dict[str, Any],
) -> dict[str, Any]:
    """Return the manifest: files, rows and suppressed cells per table, images, run context."""
    files = {p.name: p for p in exports}
    table_entries = {
        name: {
            "rows": frame.height,
            "columns": frame.columns,
            "suppressed_cells": suppressed_cells.get(name, 0),
            "csv": _relative(files.get(f"{name}.csv"), base),
            "parquet": _relative(files.get(f"{name}.parquet"), base),
        }
        for name, frame in tables.items()
    }
    return {
        **MANIFEST_MARKER,
        **context,
        "tables": table_entries,
        "suppressed_cells_total": sum(suppressed_cells.values()),
        "images": [_relative(p, base) for p in images.paths],
        "png_note": images.note,
        "png_seconds": images.seconds,
    }


def _relative(path: Path | None, base: Path) -> str | None:
    return None if path is None else path.relative_to(base).as_posix()


def write_manifest(folder: Path, content: dict[str, Any]) -> Path:
    """Write ``manifest.json`` (sorted keys, ISO dates) into ``folder``; return its path."""
    path = folder / MANIFEST
    path.write_text(json.dumps(content, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path
