# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Attribution explorer
#
# Where does the credit for a purchase go, and how much does that depend on the rule we pick?
# This notebook reads the warehouse's attribution marts through the public API
# (`attribution.open_marts`, docs/api.md) and shows:
#
# 1. how credit moves between a journey's sessions when the rule model changes;
# 2. how much revenue each attribution window lets the assistant claim (window sensitivity);
# 3. how long after the last assistant session people buy (lag distribution);
# 4. the data-driven (Markov, Shapley) view next to the rules;
# 5. a few orders explained line by line.
#
# Every number is computed by the pipeline or by the library; the notebook only reads and plots.
# Copy a cell, change a parameter, and you have your own analysis.

# %% tags=["parameters"]
# Parameters (papermill-style). warehouse_path=None finds ./warehouse.duckdb in this folder or a
# parent (the demo's), or $ATTRIBUTION_WAREHOUSE_PATH.
warehouse_path = None
window_days = 7
scope = "user"

# %%
import plotly.express as px
from IPython.display import display

import attribution

marts = attribution.open_marts(warehouse_path)
first_day, last_day = marts.data_range()
print(f"{marts.path}: data from {first_day} to {last_day}")
marts.tables()

# %% [markdown]
# ## 1. How credit moves between sessions
#
# Every rule model hands out the same total credit per order line (the credits of a line sum to
# 1); they differ in *which* of the buyer's eligible sessions get it. Positions: `only` (the
# line had a single eligible session: every model agrees), `first`, `middle` and `last`.

# %%
positions = marts.credit_by_position(scope=scope)
at_window = positions.filter(positions["window_days"] == window_days)
px.bar(
    at_window,
    x="model",
    y="attributed_revenue_usd",
    color="position",
    category_orders={"position": ["only", "first", "middle", "last"]},
    title=f"Attributed revenue by journey position, {window_days}-day window, scope {scope}",
    labels={"attributed_revenue_usd": "attributed revenue (USD)"},
).show()
at_window

# %% [markdown]
# Switching from last touch (what most dashboards use) to linear moves this much revenue
# from the last session to the earlier ones; the `moved_usd` column sums to zero.

# %%
moved = marts.credit_moved("last_touch", "linear", scope=scope)
moved.filter(moved["window_days"] == window_days)

# %% [markdown]
# ## 2. Window sensitivity: how much revenue each window claims
#
# The same rule credits more revenue with a longer window: a purchase 20 days after a session
# is "downstream" only if we say so. `share_of_revenue` is the claimed share of *all* placed
# revenue in the period.

# %%
windows = marts.window_sensitivity(scope=scope)
px.line(
    windows.filter(windows["model"] == "last_touch"),
    x="window_days",
    y="share_of_revenue",
    markers=True,
    title="Share of all revenue credited to the assistant, by attribution window",
    labels={"share_of_revenue": "share of revenue", "window_days": "window (days)"},
).update_yaxes(tickformat=".0%").show()
windows.filter(windows["model"] == "last_touch")

# %% [markdown]
# ## 3. Lag between the last session and the purchase

# %%
lags = marts.lag_distribution(scope=scope)
longest = lags.filter(lags["window_days"] == lags["window_days"].max())
px.bar(
    longest,
    x="lag_bucket",
    y="share_of_lines",
    title=f"Time from the last eligible session to the purchase ({longest['window_days'][0]}-day window)",
    labels={"share_of_lines": "share of attributed lines", "lag_bucket": "lag"},
).update_yaxes(tickformat=".0%").show()
longest.select("lag_bucket", "attributed_lines", "share_of_lines", "cumulative_share")

# %% [markdown]
# ## 4. Data-driven attribution next to the rules
#
# Markov removal effect and Shapley value per touch type (the type of the session's first
# interaction), with what each rule model credits to the same touch types.

# %%
data_driven = marts.data_driven(window_days)
if data_driven.is_empty():
    print("no data-driven summary for this window")
else:
    px.bar(
        data_driven,
        x="touch_type",
        y=["attributed_revenue_usd", "shapley_revenue_usd", "last_touch_revenue_usd"],
        barmode="group",
        title=f"Markov vs Shapley vs last touch, {window_days}-day window",
        labels={"value": "revenue (USD)", "variable": "model"},
    ).show()
data_driven.select(
    "touch_type", "removal_effect", "share", "attributed_revenue_usd", "shapley_revenue_usd"
)

# %% [markdown]
# ## 5. A few orders, explained
#
# One order per journey length (2, 3, ... eligible sessions), the same orders on every run.
# For each line: the eligible sessions and the credit each rule gives them.

# %%
for order_id in marts.orders_to_explain(n=3, window_days=window_days):
    print(f"order {order_id}")
    for reason in marts.explain_text(order_id):
        if f"{window_days}-day window, scope {scope} " in reason:
            print("  ", reason)

# %%
example = marts.orders_to_explain(n=1, window_days=window_days)
explained = marts.explain(example[0]) if example else None
if explained is not None:
    touches = explained.touches
    display(
        touches.filter(
            (touches["window_days"] == window_days) & (touches["scope"] == scope)
        ).select(
            "line_no",
            "touch_rank",
            "session_start",
            "age_hours",
            "touch_type",
            "first_touch",
            "last_touch",
            "linear",
            "time_decay",
            "position_based",
        )
    )

# %%
marts.close()
