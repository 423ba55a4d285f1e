"""The ``attribution`` command line: thin wrappers over library functions.

Heavy modules (duckdb, polars, plotly, prefect, great_expectations) are imported inside the
commands so that ``attribution --help`` answers at once.
"""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    help="Downstream-impact analytics for AI shopping assistants: sessions, multi-touch "
    "attribution, conversion lift and KPI reports on an embedded DuckDB warehouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False)

WindowsOpt = Annotated[
    str | None, typer.Option("--windows", help="Windows in days, comma-separated (e.g. 1,7,14,30).")
]
HalfLifeOpt = Annotated[
    float | None, typer.Option("--half-life-days", help="Time-decay half-life in days.")
]
TimeoutOpt = Annotated[
    int | None, typer.Option("--session-timeout-minutes", help="Session inactivity timeout.")
]


def _settings(**overrides: Any):  # -> Settings (import kept lazy)
    from pydantic import ValidationError

    from attribution.config import load_settings

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        errors.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Landing folder to write.")],
    users: Annotated[int, typer.Option("--users", min=1, help="Number of users.")] = 5000,
    days: Annotated[int, typer.Option("--days", min=1, help="Days of activity.")] = 60,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (deterministic).")] = 1,
    start: Annotated[
        str, typer.Option("--start", help="First day, YYYY-MM-DD (UTC).")
    ] = "2026-09-01",
    effect: Annotated[
        float, typer.Option("--effect", help="True relative effect of using the assistant.")
    ] = 0.15,
    holdout_share: Annotated[
        float, typer.Option("--holdout-share", help="Share of users in the holdout arm.")
    ] = 0.05,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a landing folder generated before.")
    ] = False,
) -> None:
    """Write a realistic landing folder with a planted effect, and truth.json beside it."""
    from attribution.generate import generate_landing

    try:
        truth = generate_landing(
            out,
            users=users,
            days=days,
            seed=seed,
            start_date=date.fromisoformat(start),
            effect=effect,
            holdout_share=holdout_share,
            settings=_settings(),
            overwrite=overwrite,
        )
    except (FileExistsError, ValueError) as exc:
        errors.print(f"[red]Cannot generate:[/red] {exc}")
        raise typer.Exit(2) from exc
    counts = truth.get("counts", {})
    console.print(
        f"Wrote {out} ({counts.get('interactions', '?'):,} interactions, "
        f"{counts.get('order_lines', '?'):,} order lines); truth in {out / 'truth.json'}"
    )


DateOpt = Annotated[
    str | None,
    typer.Option(
        "--date",
        help="Nightly increment for this partition date: YYYY-MM-DD, 'yesterday' or 'today' "
        "(in schedule_timezone).",
    ),
]
ReportOpt = Annotated[
    bool, typer.Option("--report/--no-report", help="Publish the report after the tables.")
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Report folder.")]
LandingOpt = Annotated[Path | None, typer.Option("--landing", help="Landing folder.")]
WarehouseOpt = Annotated[Path | None, typer.Option("--warehouse", help="DuckDB warehouse file.")]
ExpectationsOpt = Annotated[
    bool, typer.Option(help="Run Great Expectations suites in the publishing gate.")
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only print errors (for cron and timers).")
]


@app.command()
def run(
    landing: LandingOpt = None,
    warehouse: WarehouseOpt = None,
    run_date: DateOpt = None,
    out: OutOpt = None,
    report: ReportOpt = True,
    prefect: Annotated[
        bool, typer.Option("--prefect", help="Run as a Prefect flow (orchestrated, logged).")
    ] = False,
    expectations: ExpectationsOpt = True,
    quiet: QuietOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print ingest figures per file.")
    ] = False,
    windows: WindowsOpt = None,
    half_life_days: HalfLifeOpt = None,
    session_timeout_minutes: TimeoutOpt = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="duckdb (the warehouse file) or spark: ingest to DuckDB, then every model on "
            "Spark into the --lake folder (docs/spark.md).",
        ),
    ] = "duckdb",
    lake: Annotated[
        Path | None, typer.Option("--lake", help="Data lake folder of the spark engine.")
    ] = None,
    spark_master: Annotated[
        str, typer.Option("--spark-master", help="Spark master of the spark engine.")
    ] = "local[2]",
) -> None:
    """Ingest the landing folder, rebuild sessions, attribution, lift and KPI tables, and publish
    them and the report if the gate (audits, expectations) passes. Without --date: everything."""
    settings = _settings(
        landing_dir=landing,
        warehouse_path=warehouse,
        report_dir=out,
        windows_days=windows,
        half_life_days=half_life_days,
        session_timeout_minutes=session_timeout_minutes,
    )
    if engine != "duckdb":
        _run_spark(settings, engine, lake, spark_master, run_date, prefect, quiet)
        return
    day = _run_date(run_date, settings.schedule_timezone) if run_date else None
    _run(
        settings,
        run_date=day,
        prefect=prefect,
        expectations=expectations,
        report=report,
        quiet=quiet,
        verbose=verbose,
    )


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="First partition date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last partition date, inclusive.")],
    landing: LandingOpt = None,
    warehouse: WarehouseOpt = None,
    out: OutOpt = None,
    report: ReportOpt = True,
    prefect: Annotated[
        bool, typer.Option("--prefect", help="Run as the Prefect backfill flow.")
    ] = False,
    expectations: ExpectationsOpt = True,
    quiet: QuietOpt = False,
) -> None:
    """Ingest the partitions of a date range and rebuild, gate and publish as a nightly run does."""
    settings = _settings(landing_dir=landing, warehouse_path=warehouse, report_dir=out)
    first = _run_date(start, settings.schedule_timezone)
    last = _run_date(end, settings.schedule_timezone)
    if last < first:
        errors.print(f"[red]--end {last} is before --start {first}[/red]")
        raise typer.Exit(2)
    _run(
        settings,
        run_date=None,
        span=(first, last),
        prefect=prefect,
        expectations=expectations,
        report=report,
        quiet=quiet,
    )


def _run_spark(
    settings,
    engine: str,
    lake: Path | None,
    master: str,
    run_date: str | None,
    prefect: bool,
    quiet: bool,
) -> None:
    """``run --engine spark``: a full build on Spark into the lake (docs/spark.md)."""
    if engine != "spark" or lake is None or run_date:
        errors.print(
            "[red]--engine is duckdb or spark; spark needs --lake DIR and builds every day "
            "(no --date)[/red]"
        )
        raise typer.Exit(2)
    if not settings.landing_dir.is_dir():
        errors.print(f"[red]Landing folder not found:[/red] {settings.landing_dir}")
        raise typer.Exit(2)
    paths = {"landing_dir": settings.landing_dir, "warehouse_path": settings.warehouse_path}
    say = None if quiet else (lambda line: console.print(line, markup=False, soft_wrap=True))
    try:
        if prefect:
            from flows.pipeline import pipeline_flow

            summary = pipeline_flow(
                **{k: str(v) for k, v in paths.items()},
                engine="spark",
                lake=str(lake),
                spark_master=master,
            )
        else:
            from attribution.spark_engine import run_spark_pipeline

            summary = run_spark_pipeline(settings, **paths, lake=lake, master=master, progress=say)
    except Exception as exc:  # every failure ends with one readable line and exit code 1
        errors.print(f"[red]Run failed:[/red] {type(exc).__name__}: {exc}", markup=True)
        raise typer.Exit(1) from exc
    from attribution.spark_engine import not_produced_lines

    built = summary.get("spark")
    for line in not_produced_lines(built) if built else []:
        errors.print(line, markup=False, soft_wrap=True)
    if not quiet:
        console.print(
            f"Run {summary['run_id']} {summary['outcome']} on spark: window "
            f"{summary['start_date']} .. {summary['end_date']}; lake {lake}"
            + (f"; {summary['message']}" if summary.get("message") else ""),
            markup=False,
        )


def _run_date(value: str, timezone: str) -> date:
    from attribution.run_dates import resolve_run_date

    try:
        return resolve_run_date(value, timezone)
    except ValueError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _run(
    settings,
    *,
    run_date: date | None,
    prefect: bool,
    expectations: bool,
    quiet: bool,
    report: bool = True,
    verbose: bool = False,
    span: tuple[date, date] | None = None,
) -> dict[str, Any]:
    if not settings.landing_dir.is_dir():
        errors.print(f"[red]Landing folder not found:[/red] {settings.landing_dir}")
        raise typer.Exit(2)
    from attribution.run_lock import EXIT_BUSY, WarehouseBusy

    report_dir = settings.report_dir if report else None
    try:
        if prefect:
            summary = _run_flow(settings, run_date, span, expectations, report_dir)
        else:
            summary = _run_library(
                settings, run_date, span, expectations, report_dir, quiet, verbose
            )
    except WarehouseBusy as exc:  # another run holds the warehouse: try again later
        errors.print(f"[red]Run refused:[/red] {exc}", markup=True)
        raise typer.Exit(EXIT_BUSY) from exc
    except Exception as exc:  # every failure ends with one readable line and exit code 1
        errors.print(f"[red]Run failed:[/red] {type(exc).__name__}: {exc}", markup=True)
        raise typer.Exit(1) from exc
    if not quiet:
        where = summary["report"].get("index_html") if summary.get("report") else None
        console.print(
            f"Run {summary['run_id']} {summary['outcome']}: window {summary['start_date']} .. "
            f"{summary['end_date']}; warehouse {settings.warehouse_path}"
            + (f"; report {where}" if where else ""),
            markup=False,
        )
    return summary


def _run_library(
    settings,
    run_date: date | None,
    span: tuple[date, date] | None,
    expectations: bool,
    report_dir: Path | None,
    quiet: bool,
    verbose: bool,
) -> dict[str, Any]:
    from contextlib import nullcontext

    from attribution.cli_progress import PlainReporter, RichReporter
    from attribution.pipeline import run_pipeline
    from attribution.progress import SilentReporter

    if quiet:
        reporter, context = SilentReporter(), nullcontext()
    elif console.is_terminal:
        reporter = RichReporter(console)
        context = reporter
    else:
        reporter = PlainReporter(lambda m: console.print(m, markup=False, soft_wrap=True))
        context = nullcontext()
    with context:
        return run_pipeline(
            settings,
            landing_dir=settings.landing_dir,
            warehouse_path=settings.warehouse_path,
            run_date=run_date,
            start_date=span[0] if span else None,
            end_date=span[1] if span else None,
            expectations=expectations,
            progress=reporter,
            per_file=verbose,
            report_dir=report_dir,
        ).as_json()


def _run_flow(
    settings,
    run_date: date | None,
    span: tuple[date, date] | None,
    expectations: bool,
    report_dir: Path | None,
) -> dict[str, Any]:
    paths = {
        "landing_dir": str(settings.landing_dir),
        "warehouse_path": str(settings.warehouse_path),
    }
    if span is not None:
        from flows.nightly import backfill as backfill_flow

        return backfill_flow(
            start=span[0].isoformat(),
            end=span[1].isoformat(),
            report_dir=str(report_dir or settings.report_dir),
            expectations=expectations,
            **paths,
        )
    if run_date is not None and report_dir is not None:
        from flows.nightly import nightly

        return nightly(
            run_date=run_date.isoformat(),
            report_dir=str(report_dir),
            expectations=expectations,
            **paths,
        )
    from flows.pipeline import pipeline_flow

    return pipeline_flow(
        run_date=run_date,
        expectations=expectations,
        report_dir=str(report_dir) if report_dir else None,
        **paths,
    )


@app.command()
def report(
    warehouse: WarehouseOpt = None,
    out: OutOpt = None,
    period: Annotated[
        str,
        typer.Option("--period", help="Period of the report: all, YYYY (a year) or YYYY-MM."),
    ] = "all",
) -> None:
    """Write the offline HTML KPI report with plotly charts, plus CSV/Parquet exports and PNG
    images of the charts, for the published tables."""
    settings = _settings(warehouse_path=warehouse, report_dir=out)
    if not settings.warehouse_path.is_file():
        errors.print(f"[red]Warehouse not found:[/red] {settings.warehouse_path}")
        raise typer.Exit(2)
    from attribution.pipeline import report_json
    from attribution.report import write_report
    from attribution.run_lock import EXIT_BUSY, WarehouseBusy

    try:
        result = report_json(
            write_report(settings.warehouse_path, settings.report_dir, settings, period=period)
        )
    except WarehouseBusy as exc:  # a run is writing the warehouse: try again later
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_BUSY) from exc
    except (FileNotFoundError, ValueError) as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    _print_report(result)


def _print_report(result: dict[str, Any]) -> None:
    console.print(f"Report: {Path(result['index_html']).resolve()}", markup=False)
    console.print(
        f"Exports: {len(result['exports'])} files; PNG images: {len(result['images'])}; "
        f"cells suppressed by the privacy floor: {result['suppressed_cells']:,}",
        markup=False,
    )
    if result.get("png_note"):
        console.print(f"PNG images skipped: {result['png_note']}", markup=False)


@app.command()
def serve(
    cron: Annotated[
        str | None, typer.Option("--cron", help="Cron schedule (default: schedule_cron).")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA time zone of the schedule (default: UTC)."),
    ] = None,
    landing: LandingOpt = None,
    warehouse: WarehouseOpt = None,
    out: OutOpt = None,
    name: Annotated[str, typer.Option("--name", help="Deployment name.")] = "nightly",
) -> None:
    """Serve the nightly deployment on a long-running Prefect server (PREFECT_API_URL): each
    scheduled run processes yesterday's partitions. Blocks until stopped. See
    docs/operations.md for the server and the plain cron / systemd alternative."""
    settings = _settings(
        landing_dir=landing,
        warehouse_path=warehouse,
        report_dir=out,
        schedule_cron=cron,
        schedule_timezone=timezone,
    )
    from flows.serve import ServeError, check_serve_preconditions, serve_nightly

    problem = check_serve_preconditions(
        cron=settings.schedule_cron, timezone=settings.schedule_timezone
    )
    if problem:
        errors.print(f"[red]Cannot serve:[/red] {problem}", markup=True)
        raise typer.Exit(2)
    console.print(
        f"Serving attribution-nightly/{name}: cron '{settings.schedule_cron}' "
        f"({settings.schedule_timezone}); Ctrl-C to stop.",
        markup=False,
    )
    try:
        serve_nightly(
            cron=settings.schedule_cron,
            timezone=settings.schedule_timezone,
            landing_dir=str(settings.landing_dir.resolve()),
            warehouse_path=str(settings.warehouse_path.resolve()),
            report_dir=str(settings.report_dir.resolve()),
            name=name,
        )
    except ServeError as exc:
        errors.print(f"[red]Cannot serve:[/red] {exc}", markup=True)
        raise typer.Exit(2) from exc


@app.command()
def demo(
    users: Annotated[int, typer.Option("--users", min=100, help="Users to generate.")] = 5000,
    days: Annotated[
        int, typer.Option("--days", min=7, help="Days to generate (61: two whole months).")
    ] = 61,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    landing: Annotated[Path, typer.Option("--landing")] = Path("demo-landing"),
    warehouse: Annotated[Path, typer.Option("--warehouse")] = Path("warehouse.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("report"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace a warehouse that a demo did not create.")
    ] = False,
) -> None:
    """Generate a sample landing folder, run the whole pipeline and write the KPI report."""
    settings = _settings(landing_dir=landing, warehouse_path=warehouse, report_dir=out)
    _clear_demo_outputs(settings.landing_dir, settings.warehouse_path, force=force)
    console.print(f"[bold]1/2[/bold] generating {users:,} users x {days} days into {landing}")
    generate(out=landing, users=users, days=days, seed=seed, overwrite=True)
    console.print(
        f"[bold]2/2[/bold] running the pipeline into {warehouse} and publishing the report "
        f"into {out}"
    )
    summary = _run(settings, run_date=None, prefect=False, expectations=True, quiet=False)
    _mark_demo(settings.warehouse_path)
    _print_report(summary["report"])
    console.print(
        f"\nWarehouse: {warehouse.resolve()}\nReport:    {(out / 'index.html').resolve()}\n"
        f"Truth:     {(landing / 'truth.json').resolve()}"
    )


@app.command()
def notebooks(
    warehouse: WarehouseOpt = None,
    folder: Annotated[Path, typer.Option("--dir", help="Folder of the jupytext notebooks.")] = Path(
        "notebooks"
    ),
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open a web browser.")
    ] = True,
    pair_only: Annotated[
        bool,
        typer.Option("--pair-only", help="Only write the .ipynb files; do not start JupyterLab."),
    ] = False,
) -> None:
    """Open the analyst notebooks in JupyterLab, reading the demo (or given) warehouse.

    Writes each notebook's .ipynb from its .py, then starts JupyterLab with
    ATTRIBUTION_WAREHOUSE_PATH set. JupyterLab is the optional extra `notebooks`:
    `uv run --extra notebooks attribution notebooks`.
    """
    import subprocess

    from attribution.marts import resolve_warehouse
    from attribution.notebook_files import (
        NotebookError,
        jupyter_lab_command,
        lab_environment,
        pair_notebooks,
    )

    try:
        found = resolve_warehouse(warehouse)
        paired = pair_notebooks(folder)
        command = None if pair_only else jupyter_lab_command(folder, open_browser=browser)
    except (FileNotFoundError, NotebookError) as exc:
        errors.print(f"[red]Cannot open the notebooks:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"Warehouse: {found}")
    for path in paired:
        console.print(f"Notebook:  {path}")
    if command is None:
        return
    raise typer.Exit(subprocess.call(command, env=lab_environment(found)))


def _open_warehouse(warehouse: Path | None):  # -> duckdb.DuckDBPyConnection (lazy import)
    """Return a read-only connection to the configured warehouse, or exit 2 if it is missing
    (75 if a run is writing it)."""
    from attribution.run_lock import EXIT_BUSY, WarehouseBusy
    from attribution.warehouse import connect

    settings = _settings(warehouse_path=warehouse)
    if not settings.warehouse_path.is_file():
        errors.print(f"[red]Warehouse not found:[/red] {settings.warehouse_path}")
        raise typer.Exit(2)
    try:
        return connect(settings.warehouse_path, read_only=True)
    except WarehouseBusy as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_BUSY) from exc


@app.command()
def explain(
    order: Annotated[str, typer.Option("--order", help="The order_id to explain.")],
    warehouse: WarehouseOpt = None,
) -> None:
    """Show, for each line of an order, the eligible sessions and their credits under every model
    and window: why each was credited."""
    from rich.table import Table

    from attribution.explain import CREDIT_COLUMNS, explain_order, explanation_text

    con = _open_warehouse(warehouse)
    try:
        result = explain_order(con, order)
    except LookupError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        con.close()
    lines = Table(title=f"Order {order}: lines")
    for column in result.lines.columns:
        lines.add_column(column)
    for row in result.lines.iter_rows():
        lines.add_row(*[str(v) for v in row])
    console.print(lines)
    headers = {
        "window_days": "win",
        "scope": "scope",
        "session_id": "session",
        "session_start": "start",
        "age_hours": "age h",
        "touch_type": "type",
        "session_products": "products",
        "first_touch": "first",
        "last_touch": "last",
        "linear": "linear",
        "time_decay": "decay",
        "position_based": "pos",
    }
    out = console if console.is_terminal else Console(width=160, highlight=False)
    for line_no in result.lines["line_no"].to_list():
        touches = Table(title=f"Line {line_no}: eligible sessions and credits")
        for column, header in headers.items():
            touches.add_column(header, justify="right" if column in CREDIT_COLUMNS else "left")
        part = result.touches.filter(result.touches["line_no"] == line_no)
        for row in part.iter_rows(named=True):
            touches.add_row(
                *[f"{row[c]:.3f}" if c in CREDIT_COLUMNS else str(row[c]) for c in headers]
            )
        out.print(touches)
    for reason in explanation_text(result):
        console.print(f"- {reason}", markup=False)


def _method_table(title: str, figures: tuple[str, ...]):  # -> rich.table.Table
    """Return a table with left-aligned period, method, experiment and right-aligned figures."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("period", "method", "experiment"):
        table.add_column(column, justify="left")
    for column in figures:
        table.add_column(column, justify="right")
    return table


@app.command()
def lift(
    warehouse: WarehouseOpt = None,
    window: Annotated[int, typer.Option("--window", help="Conversion window in days.")] = 7,
    period: Annotated[
        str, typer.Option("--period", help="Period grain: all, year, month, week or day.")
    ] = "all",
    start: Annotated[
        str | None, typer.Option("--start", help="Only periods starting on/after this date.")
    ] = None,
) -> None:
    """Print each method's conversion lift with its 95% interval, the observed-vs-adjusted gap
    and the covariate-balance verdict."""

    from attribution.lift import (
        GRAINS,
        balance_verdict,
        downstream_impact,
        pooled_lift_by_method,
    )
    from attribution.warehouse import table_exists

    if period not in GRAINS:
        errors.print(f"[red]Unknown period {period!r}:[/red] use {', '.join(GRAINS)}")
        raise typer.Exit(2)
    con = _open_warehouse(warehouse)
    try:
        if not table_exists(con, "fct_conversion_lift"):
            errors.print("[red]No fct_conversion_lift table: run `attribution run` first[/red]")
            raise typer.Exit(2)
        frame = pooled_lift_by_method(con, window, period=period)
        impact = downstream_impact(con, window, period=period)
        verdict = balance_verdict(con, window, period=period)
    finally:
        con.close()
    if start is not None:
        frame = frame.filter(frame["period_start"] >= date.fromisoformat(start))
        impact = impact.filter(impact["period_start"] >= date.fromisoformat(start))
    if frame.is_empty():
        errors.print(f"[red]No lift rows for window {window} and period {period}[/red]")
        raise typer.Exit(1)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:+.1f}%"

    def money(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    out = console if console.is_terminal else Console(width=160, highlight=False)
    table = _method_table(
        f"Conversion lift, {window}-day window, period {period}",
        ("engaged", "comparison", "CR eng.", "CR comp.", "lift", "95% interval", "SRM p"),
    )
    for row in frame.iter_rows(named=True):
        table.add_row(
            str(row["period_start"]),
            row["method"],
            row["experiment_id"] or "",
            f"{row['n_engaged']:,}",
            f"{row['n_comparison']:,}",
            "-" if row["cr_engaged"] is None else f"{100 * row['cr_engaged']:.2f}%",
            "-" if row["cr_comparison"] is None else f"{100 * row['cr_comparison']:.2f}%",
            pct(row["lift"]),
            f"{pct(row['ci_low'])} .. {pct(row['ci_high'])}",
            "" if row["srm_p_value"] is None else f"{row['srm_p_value']:.3g}",
        )
    out.print(table)
    by_method = {
        (r["period_start"], r["method"]): r["lift"]
        for r in frame.iter_rows(named=True)
        if r["method"] in ("observed", "adjusted")
    }
    for p_start in sorted({k[0] for k in by_method}):
        observed, adjusted = (
            by_method.get((p_start, "observed")),
            by_method.get((p_start, "adjusted")),
        )
        if observed is not None and adjusted is not None:
            out.print(
                f"{p_start}: observed {pct(observed)} vs adjusted {pct(adjusted)}: "
                f"{100 * (observed - adjusted):.1f} points of the observed lift are explained by "
                "who chooses to use the assistant (observed covariates)."
            )
    out.print(f"Balance: {verdict}")
    impact_table = _method_table(
        "Downstream impact (USD)",
        (
            "attributed (last touch)",
            "incremental",
            "95% interval",
            "annual run-rate",
            "95% interval ",
        ),
    )
    for row in impact.iter_rows(named=True):
        impact_table.add_row(
            str(row["period_start"]),
            row["method"],
            row["experiment_id"] or "",
            money(row["attributed_revenue_usd"]),
            money(row["incremental_revenue_usd"]),
            f"{money(row['incremental_revenue_ci_low'])} .. "
            f"{money(row['incremental_revenue_ci_high'])}",
            money(row["run_rate_usd"]),
            f"{money(row['run_rate_ci_low'])} .. {money(row['run_rate_ci_high'])}",
        )
    out.print(impact_table)
    out.print(
        "observed = naive comparison (includes self-selection); adjusted = propensity-weighted "
        "(removes only what pre-period covariates explain); experiment = randomised, causal "
        "(intent-to-treat). See docs/lift.md."
    )


_DEMO_MARKER = "_demo_warehouse"


def _clear_demo_outputs(landing: Path, warehouse: Path, *, force: bool) -> None:
    """Remove the previous demo's landing folder and warehouse, refusing to touch foreign ones."""
    if warehouse.exists() and not force:
        from attribution.warehouse import connect, table_exists

        con = connect(warehouse, read_only=True)
        try:
            is_demo = table_exists(con, _DEMO_MARKER)
        finally:
            con.close()
        if not is_demo:
            errors.print(
                f"[red]{warehouse} exists and was not made by `attribution demo`;[/red] "
                "pass --warehouse with another path, or --force to replace it."
            )
            raise typer.Exit(2)
    if warehouse.exists():
        warehouse.unlink()
        Path(f"{warehouse}.wal").unlink(missing_ok=True)
    if landing.exists():
        if not (landing / "truth.json").is_file() and not force:
            errors.print(
                f"[red]{landing} exists and is not a generated landing folder;[/red] "
                "pass --landing with another path, or --force."
            )
            raise typer.Exit(2)
        shutil.rmtree(landing)


def _mark_demo(warehouse: Path) -> None:
    from attribution.warehouse import connect

    con = connect(warehouse)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {_DEMO_MARKER} (created_at TIMESTAMP)")
        con.execute(f"INSERT INTO {_DEMO_MARKER} VALUES (now()::TIMESTAMP)")
    finally:
        con.close()


def main() -> None:
    """Entry point of the ``attribution`` script."""
    app(prog_name="attribution")


if __name__ == "__main__":
    sys.exit(main())
