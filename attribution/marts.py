"""The public, read-only API for analysts: open a warehouse, read its marts as polars frames.

    import attribution
    marts = attribution.open_marts()          # or open_marts("path/to/warehouse.duckdb")
    marts.lift(window_days=7)                 # observed vs adjusted vs experiment
    marts.compare_model_versions()            # did the new assistant model change anything?

Every method returns a polars frame (or a small dataclass of frames) and computes nothing that
the pipeline does not define: the notebooks in ``notebooks/`` use only this API. Reference:
docs/api.md.

The connection is read-only: a notebook never changes the warehouse. DuckDB lets one process
write a file at a time, so close the marts (``marts.close()`` or ``with open_marts() as marts``)
before the nightly run writes the same file.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from attribution import credit_views, lift_views, version_compare
from attribution.explain import OrderExplanation, explain_order, explanation_text
from attribution.lift import balance_verdict, downstream_impact, pooled_lift_by_method
from attribution.warehouse import connect, models, require_tables, table_exists

WAREHOUSE_ENV = "ATTRIBUTION_WAREHOUSE_PATH"
DEFAULT_WAREHOUSE = Path("warehouse.duckdb")


def resolve_warehouse(path: str | Path | None = None) -> Path:
    """Return the warehouse file to read.

    ``path`` if given; else ``$ATTRIBUTION_WAREHOUSE_PATH``; else ``warehouse.duckdb`` in the
    working directory or the nearest parent that has one (a notebook runs in ``notebooks/``,
    the demo writes the warehouse one level up). Raises ``FileNotFoundError`` with what to do.
    """
    if path is None and os.environ.get(WAREHOUSE_ENV):
        path = os.environ[WAREHOUSE_ENV]
    if path is not None:
        found = Path(path).expanduser()
        if not found.is_file():
            raise FileNotFoundError(
                f"no warehouse at {found} (run `attribution demo` or pass a path)"
            )
        return found.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_WAREHOUSE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {DEFAULT_WAREHOUSE} in {here} or its parents: run `attribution demo` first, set "
        f"{WAREHOUSE_ENV}, or pass the path to open_marts()"
    )


class Marts:
    """Read-only access to one warehouse's marts. Create with ``open_marts``."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self.con = con

    def __enter__(self) -> Marts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the file is then free for the nightly run)."""
        self.con.close()

    def __repr__(self) -> str:
        return f"Marts({str(self.path)!r})"

    # --- what is there -------------------------------------------------------------------

    def tables(self) -> pl.DataFrame:
        """Return one row per SQL model present in the warehouse: name, layer, rows, grain."""
        rows = [
            {
                "table": m.name,
                "layer": m.layer,
                "rows": self.con.execute(f'SELECT count(*) FROM "{m.name}"').fetchall()[0][0],
                "grain": m.grain,
            }
            for m in models()
            if table_exists(self.con, m.name)
        ]
        return pl.DataFrame(rows, schema=["table", "layer", "rows", "grain"], orient="row")

    def data_range(self) -> tuple[date, date]:
        """Return the first and last day of loaded visits and assistant sessions."""
        return version_compare.data_range(self.con)

    def sql(self, query: str, **params: Any) -> pl.DataFrame:
        """Run a read-only query with named ``$parameters`` bound; return a polars frame."""
        return self.con.sql(query, params=params or None).pl()

    # --- attribution ---------------------------------------------------------------------

    def credit_by_position(
        self, scope: str = "user", start: date | None = None, end: date | None = None
    ) -> pl.DataFrame:
        """Credit and attributed revenue per (window, rule model, position in the journey)."""
        return credit_views.credit_by_position(self.con, scope, start, end)

    def credit_moved(self, from_model: str, to_model: str, scope: str = "user") -> pl.DataFrame:
        """Revenue that moves between journey positions when one rule model replaces another."""
        return credit_views.credit_moved(self.credit_by_position(scope), from_model, to_model)

    def window_sensitivity(self, scope: str = "user") -> pl.DataFrame:
        """Attributed revenue and its share of all revenue per (window, rule model)."""
        return credit_views.window_sensitivity(self.con, scope)

    def lag_distribution(self, scope: str = "user") -> pl.DataFrame:
        """Time from the last eligible session to the purchase, per window and lag bucket."""
        return credit_views.lag_distribution(self.con, scope)

    def data_driven(self, window_days: int | None = None) -> pl.DataFrame:
        """Markov removal effects and Shapley values per touch type, beside the rule models."""
        return credit_views.data_driven_by_touch_type(self.con, window_days)

    def orders_to_explain(self, n: int = 3, window_days: int = 7) -> list[str]:
        """Order ids with multi-session journeys (one per journey length), the same every call."""
        return credit_views.orders_to_explain(self.con, n, window_days)

    def explain(self, order_id: str) -> OrderExplanation:
        """An order's lines and every eligible session's credit under every model and window."""
        return explain_order(self.con, order_id)

    def explain_text(self, order_id: str) -> list[str]:
        """Plain-language reasons for an order's credit, one per (line, window, scope)."""
        return explanation_text(explain_order(self.con, order_id))

    # --- lift ----------------------------------------------------------------------------

    def lift(self, window_days: int = 7, period: str = "all", segment: str = "all") -> pl.DataFrame:
        """Lift per method (observed, adjusted, experiment) with intervals and p-values."""
        return pooled_lift_by_method(self.con, window_days, period, segment)

    def lift_by_window(self, period: str = "all", segment: str = "all") -> pl.DataFrame:
        """Lift per (window, method, experiment) with its interval."""
        return lift_views.lift_by_window(self.con, period, segment)

    def segment_lift(
        self, window_days: int = 7, method: str = "adjusted", period: str = "all"
    ) -> pl.DataFrame:
        """Lift per segment with Benjamini-Hochberg adjusted p-values and a significance call."""
        return lift_views.segment_lift(self.con, window_days, method, period)

    def balance(self, window_days: int = 7, period: str = "all") -> pl.DataFrame:
        """Covariate balance (SMD before and after weighting) of the adjusted method."""
        return lift_views.balance(self.con, window_days, period)

    def balance_verdict(self, window_days: int = 7, period: str = "all") -> str:
        """One line: balanced or not, trimming, effective sample size."""
        return balance_verdict(self.con, window_days, period)

    def overlap(self, window_days: int = 7, period: str = "all") -> pl.DataFrame:
        """Propensity overlap diagnostics of the adjusted method per period."""
        return lift_views.overlap(self.con, window_days, period)

    def propensity_scores(self, window_days: int = 7) -> pl.DataFrame:
        """Every visitor-day of the window with its propensity to engage and its ATT weight."""
        return lift_views.propensity_scores(version_compare.version_units(self.con, window_days))

    def lift_in_plain_words(self, window_days: int = 7) -> list[str]:
        """What "X% more likely to buy" means for each method, in absolute terms."""
        return lift_views.lift_in_plain_words(self.lift(window_days), window_days)

    def lift_arithmetic(self, window_days: int = 7) -> pl.DataFrame:
        """``lift`` with percentage-point differences and extra buyers per 1,000 users."""
        return lift_views.lift_arithmetic(self.lift(window_days))

    def impact(self, window_days: int = 7, period: str = "all") -> pl.DataFrame:
        """Attributed vs incremental revenue per method, with the annual run-rate."""
        return downstream_impact(self.con, window_days, period)

    # --- KPIs and model versions -----------------------------------------------------------

    def kpi(self, grain: str = "monthly", segment: str = "all") -> pl.DataFrame:
        """Rows of ``kpi_daily_segments`` / ``kpi_monthly_segments`` for one segment."""
        if grain not in ("daily", "monthly"):
            raise ValueError("grain must be 'daily' or 'monthly'")
        table = f"kpi_{grain}_segments"
        require_tables(self.con, table)
        key = "date" if grain == "daily" else "month"
        return self.con.sql(
            f"SELECT * FROM {table} WHERE segment = $segment ORDER BY {key} NULLS LAST",
            params={"segment": segment},
        ).pl()

    def model_version_mix(self) -> pl.DataFrame:
        """Sessions and users per (day, assistant model version), with each version's share."""
        return version_compare.daily_version_mix(self.con)

    def compare_model_versions(
        self,
        window_days: int = 7,
        baseline: str | None = None,
        candidate: str | None = None,
        **options: Any,
    ) -> version_compare.VersionComparison:
        """Candidate vs baseline model version, controlling for marketplace and calendar day."""
        return version_compare.compare_model_versions(
            self.con, window_days, baseline, candidate, **options
        )


def open_marts(path: str | Path | None = None) -> Marts:
    """Open a warehouse read-only (see ``resolve_warehouse`` for how the file is found)."""
    found = resolve_warehouse(path)
    return Marts(found, connect(found, read_only=True))
