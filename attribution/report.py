"""The KPI report of one period: read the warehouse once, apply the privacy floor, publish a folder.

``write_report`` is the only function with I/O on both ends: it opens the warehouse read-only,
reads every frame (``report_data``), closes it, floors every frame (``privacy``), builds the
headline (``headline``) and charts (``charts``), then writes the page (``report_html``), the
CSV/Parquet exports, the PNG images and ``manifest.json`` (``exports``) into a temporary sibling
folder that is swapped into place (``publish_dir``). Layout of the published folder::

    index.html            self-contained page (plotly.js inlined once, no network references)
    manifest.json         files, rows, suppressed cells per table, period, settings hash, K
    data/<table>.csv      every exported table after the privacy floor
    data/<table>.parquet  the same with column types kept (DECIMAL money, DATE days)
    images/<chart>.png    one image per chart (when a Chromium is installed)

See docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from attribution.charts import report_figures
from attribution.config import Settings
from attribution.exports import (
    DATA_DIR,
    IMAGES_DIR,
    MANIFEST,
    MANIFEST_MARKER,
    manifest,
    write_chart_images,
    write_manifest,
    write_table_exports,
)
from attribution.headline import headline
from attribution.privacy import FlooredFrame, floor_frame
from attribution.publish_dir import is_replaceable, staged_directory
from attribution.report_data import TABLE_FLOORS, ReportFrames, read_report_frames
from attribution.report_html import PageContext, render_html
from attribution.report_period import parse_period
from attribution.warehouse import connect

INDEX = "index.html"


@dataclass(frozen=True)
class ReportResult:
    """Where a published report's files are and what it says (paths inside ``out_dir``)."""

    index_html: Path
    manifest: Path
    exports: list[Path]
    images: list[Path]
    suppressed_cells: dict[str, int]
    headline: list[str]
    png_note: str | None
    period: str
    period_start: str
    period_end: str
    exported_rows: int
    html_bytes: int
    png_seconds: float


def is_legacy_report(folder: Path) -> bool:
    """Return True for a report folder of the earlier layout (index.html + flat CSV/Parquet)."""
    if not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    return any(p.name == INDEX for p in entries) and all(
        p.is_file() and (p.name == INDEX or p.suffix in {".csv", ".parquet", ".tmp"})
        for p in entries
    )


def floored_tables(frames: ReportFrames, min_users: int) -> dict[str, FlooredFrame]:
    """Return every report table after the privacy floor, keyed by table name."""
    floored = {}
    for name, frame in frames.tables.items():
        try:
            floored[name] = floor_frame(frame, TABLE_FLOORS[name], min_users)
        except ValueError as exc:
            raise ValueError(f"table {name}: {exc}") from exc
    return floored


def write_report(
    warehouse_path: Path, out_dir: Path, settings: Settings, period: str = "all"
) -> ReportResult:
    """Write the report of ``period`` ('all', 'YYYY' or 'YYYY-MM') into ``out_dir`` atomically.

    Raises ValueError for a malformed period, a period without data, or an ``out_dir`` that
    is not a report folder (it would be replaced whole); FileNotFoundError for an unbuilt
    warehouse, and ``exports.ChromiumNotFound`` (a FileNotFoundError) when report_png = always
    and no Chromium is installed. On any error a previously published report stays untouched.
    """
    spec = parse_period(period)
    out_dir = Path(out_dir)
    if not (is_replaceable(out_dir, MANIFEST, MANIFEST_MARKER) or is_legacy_report(out_dir)):
        raise ValueError(
            f"{out_dir} exists and is not a report folder (no {MANIFEST} written by the report); "
            "it would be replaced whole: choose a new or empty folder"
        )
    con = connect(warehouse_path, read_only=True)
    try:
        frames = read_report_frames(con, settings, spec)
    finally:
        con.close()

    k = settings.privacy_min_users
    floored = floored_tables(frames, k)
    tables = {name: f.frame for name, f in floored.items()}
    suppressed = {name: f.suppressed_cells for name, f in floored.items()}
    top = headline(
        monthly_segments=tables["kpi_monthly_segments"],
        lift_by_method=tables["lift_by_method"],
        impact=tables["downstream_impact"],
        period=frames.period,
        data_start=frames.data_start,
        window_days=frames.window_days,
        min_users=k,
    )
    figures = report_figures(tables, frames.window_days, k)
    generated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    with staged_directory(out_dir) as staging:
        exports = write_table_exports(staging / DATA_DIR, tables)
        images = write_chart_images(figures, staging / IMAGES_DIR, settings.report_png)
        context = PageContext(
            period=frames.period,
            settings=settings,
            generated_at=generated_at,
            balance=frames.balance,
            suppressed_cells=suppressed,
            png_note=images.note,
        )
        page = staging / INDEX
        page.write_text(render_html(figures, top, tables, context), encoding="utf-8")
        html_bytes = page.stat().st_size
        write_manifest(
            staging,
            manifest(
                base=staging,
                tables=tables,
                exports=exports,
                images=images,
                suppressed_cells=suppressed,
                context={
                    "period": frames.period.label,
                    "period_start": frames.period.start.isoformat(),
                    "period_end": frames.period.end.isoformat(),
                    "data_start": frames.data_start.isoformat(),
                    "data_end": frames.data_end.isoformat(),
                    "window_days": frames.window_days,
                    "settings_hash": settings.settings_hash(),
                    "privacy_min_users": k,
                    "generated_at": generated_at,
                    "index_html": INDEX,
                    "html_bytes": html_bytes,
                    "charts": list(figures),
                    "headline": top.sentences,
                    "headline_figures": top.figures,
                },
            ),
        )
        relative = [p.relative_to(staging) for p in (*exports, *images.paths)]

    published = out_dir.absolute()
    return ReportResult(
        index_html=published / INDEX,
        manifest=published / MANIFEST,
        exports=[published / p for p in relative[: len(exports)]],
        images=[published / p for p in relative[len(exports) :]],
        suppressed_cells=suppressed,
        headline=top.sentences,
        png_note=images.note,
        period=frames.period.label,
        period_start=frames.period.start.isoformat(),
        period_end=frames.period.end.isoformat(),
        exported_rows=sum(t.height for t in tables.values() if t.width),
        html_bytes=html_bytes,
        png_seconds=images.seconds,
    )
