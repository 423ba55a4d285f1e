"""Convert the Hillstrom e-mail experiment (hillstrom.csv) into a landing folder.

The MineThatData file has one row per customer: the arm (``segment``: Mens E-Mail, Womens
E-Mail, No E-Mail), whether they visited, converted and how much they spent in the two weeks
after the e-mail. The converter writes it in the data contract so that the product's
``experiment`` lift can be checked against the file (tests/test_hillstrom.py):

* ``assignments``: two experiments, ``hillstrom_mens`` and ``hillstrom_womens``. The e-mail arm is
  ``treatment``; the No E-Mail customers are the ``holdout`` of both (one row per experiment).
  Every customer is assigned at ``ASSIGNED_AT`` (a Monday, 00:00 UTC).
* ``orders``: one order of one line per converter, amount = ``spend`` in USD, placed on day
  ``row % 7`` after assignment at 10:00, so every conversion is inside a 7- and a 14-day window.
* ``visits``: one storefront visit per visitor (``visit = 1``) on day ``row % 15`` at 09:00, so
  the data runs to day 14 and the 14-day window (the file's follow-up) is complete.
* ``fx_rates``: USD = 1 on every day.

User ids are ``H`` + the 0-based row number (5 digits); order ids ``HO`` + the row number.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

ASSIGNED_AT = datetime(2008, 3, 3, tzinfo=UTC)
FOLLOW_UP_DAYS = 14
ARM_EXPERIMENT = {"Mens E-Mail": "hillstrom_mens", "Womens E-Mail": "hillstrom_womens"}
HOLDOUT_ARM = "No E-Mail"
EXPECTED_HOLDOUT_SHARE = {"hillstrom_mens": 0.5, "hillstrom_womens": 0.5}


def _ts(offset: pl.Expr) -> pl.Expr:
    base = pl.lit(ASSIGNED_AT.replace(tzinfo=None))
    return (base + offset).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_hillstrom(csv_path: Path) -> pl.DataFrame:
    """Return the file with a ``row`` index and ``user_id`` column added."""
    frame = pl.read_csv(csv_path, schema_overrides={"spend": pl.Utf8, "history": pl.Utf8})
    return frame.with_row_index("row").with_columns(
        pl.format("H{}", pl.col("row").cast(pl.Utf8).str.zfill(5)).alias("user_id")
    )


def convert_hillstrom(csv_path: Path, landing_dir: Path) -> dict[str, int]:
    """Write the landing folder for ``csv_path``; return rows written per source."""
    data = read_hillstrom(Path(csv_path))
    landing = Path(landing_dir)
    for sub in ("assignments", "orders", "visits", "fx_rates"):
        (landing / sub).mkdir(parents=True, exist_ok=True)
    assigned = ASSIGNED_AT.strftime("%Y-%m-%dT%H:%M:%SZ")

    treated = data.filter(pl.col("segment") != HOLDOUT_ARM).select(
        "user_id",
        pl.col("segment").replace_strict(ARM_EXPERIMENT).alias("experiment_id"),
        pl.lit("treatment").alias("arm"),
    )
    holdout_users = data.filter(pl.col("segment") == HOLDOUT_ARM).select("user_id")
    holdout = pl.concat(
        [
            holdout_users.with_columns(
                pl.lit(experiment).alias("experiment_id"), pl.lit("holdout").alias("arm")
            )
            for experiment in sorted(ARM_EXPERIMENT.values())
        ]
    )
    assignments = (
        pl.concat([treated, holdout])
        .with_columns(pl.lit(assigned).alias("assigned_at"))
        .sort("experiment_id", "user_id")
    )
    assignments.write_csv(landing / "assignments" / "assignments.csv")

    day = pl.duration(days=pl.col("row") % 7, hours=10)
    orders = data.filter(pl.col("conversion") == 1).select(
        pl.format("HO{}", pl.col("row").cast(pl.Utf8).str.zfill(5)).alias("order_id"),
        pl.lit(1).alias("line_no"),
        "user_id",
        _ts(day).alias("ts"),
        pl.lit("US").alias("marketplace"),
        pl.lit("hillstrom").alias("product_id"),
        pl.lit(1).alias("quantity"),
        pl.col("spend").alias("amount"),  # the file's text, exactly
        pl.lit("USD").alias("currency"),
        pl.lit("placed").alias("status"),
        _ts(day).alias("updated_at"),
    )
    orders.write_csv(landing / "orders" / "orders.csv")

    visit_day = pl.duration(days=pl.col("row") % (FOLLOW_UP_DAYS + 1), hours=9)
    visits = data.filter(pl.col("visit") == 1).select(
        "user_id",
        _ts(visit_day).alias("ts"),
        pl.lit("US").alias("marketplace"),
        pl.lit("web").alias("channel"),
    )
    visits.write_csv(landing / "visits" / "visits.csv")

    fx = pl.DataFrame(
        {
            "date": [
                (ASSIGNED_AT + timedelta(days=d)).date().isoformat()
                for d in range(FOLLOW_UP_DAYS + 1)
            ],
            "currency": ["USD"] * (FOLLOW_UP_DAYS + 1),
            "rate_to_usd": ["1"] * (FOLLOW_UP_DAYS + 1),
        }
    )
    fx.write_csv(landing / "fx_rates" / "fx_rates.csv")
    return {
        "assignments": assignments.height,
        "orders": orders.height,
        "visits": visits.height,
        "fx_rates": fx.height,
    }
