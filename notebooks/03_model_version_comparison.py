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
# # Model-version comparison: did the new assistant model change anything?
#
# The assistant's model changed during the period. Did conversion, lift and attributed revenue
# change with it? The trap: the new version ran *later*, so a plain "v2 users vs v1 users"
# comparison is also "late days vs early days" (season, promotions, and at the end of the data
# orders that have not happened yet), and where a rollout differs by marketplace, one market vs
# another. This notebook:
#
# 1. shows when each version answered (the rollout);
# 2. shows the naive per-version numbers, and why they mislead;
# 3. compares the versions **on the same day in the same marketplace** (a stratified,
#    Mantel-Haenszel-style ratio over marketplace x day strata, 95% bootstrap intervals over
#    users) for conversion, revenue and attributed revenue;
# 4. compares each version's lift over same-day non-users (propensity-adjusted), which also uses
#    the days when only one version ran.
#
# Method: `attribution.version_compare` (docs/api.md). Everything here reads the warehouse
# through `attribution.open_marts`.

# %% tags=["parameters"]
warehouse_path = None
window_days = 7
baseline = None  # None = the first version to appear
candidate = None  # None = the last version to appear

# %%
import plotly.express as px
import plotly.graph_objects as go

import attribution

marts = attribution.open_marts(warehouse_path)

# %% [markdown]
# ## 1. The rollout: share of assistant sessions per version and day

# %%
mix = marts.model_version_mix()
px.area(
    mix,
    x="date",
    y="share_of_sessions",
    color="model_version",
    title="Share of assistant sessions answered by each model version",
    labels={"share_of_sessions": "share of sessions"},
).update_yaxes(tickformat=".0%").show()
overlap_days = mix.filter(mix["versions_that_day"] > 1)["date"].n_unique()
print(f"days on which more than one version answered: {overlap_days}")

# %% [markdown]
# ## 2. Naive per-version numbers
#
# Conversion rate, revenue and attributed revenue per engaged visitor-day for each version, and
# for visitor-days without the assistant. The `model_version` segments of the lift table compare
# each version's users with *all* non-users of the period, across time:

# %%
comparison = marts.compare_model_versions(window_days, baseline, candidate)
print(
    f"baseline {comparison.baseline}, candidate {comparison.candidate}, "
    f"{comparison.window_days}-day window, visitor-days {comparison.start_date} to {comparison.end_date}"
)
comparison.by_version.select(
    "model_version",
    "first_date",
    "last_date",
    "units",
    "users",
    "conversion_rate",
    "conversion_rate_ci_low",
    "conversion_rate_ci_high",
    "revenue_per_unit_usd",
    "attributed_revenue_per_unit_usd",
)

# %%
segments = marts.segment_lift(window_days, method="adjusted")
segments.filter(segments["dimension"] == "model_version").select(
    "value", "n_engaged", "n_comparison", "lift", "ci_low", "ci_high", "p_value_bh"
)

# %% [markdown]
# ## 3. Same day, same marketplace
#
# Only marketplace-days on which both versions answered inform this comparison (the rollout
# ramp); `n_strata_informative` says how many there were. `relative_change` is the candidate's
# change relative to the baseline: +10% means 10% higher.

# %%
contrasts = comparison.contrasts
fig = go.Figure(
    go.Scatter(
        x=contrasts["relative_change"],
        y=contrasts["metric"],
        mode="markers",
        error_x={
            "type": "data",
            "symmetric": False,
            "array": (contrasts["ci_high"] - contrasts["relative_change"]).to_list(),
            "arrayminus": (contrasts["relative_change"] - contrasts["ci_low"]).to_list(),
        },
    )
)
fig.add_vline(x=0, line_dash="dot")
fig.update_layout(
    title=f"{comparison.candidate} vs {comparison.baseline}, controlled for marketplace and day",
    xaxis_title="relative change (95% interval)",
    xaxis_tickformat=".0%",
).show()
contrasts

# %% [markdown]
# ## 4. Lift of each version over same-day non-users
#
# Each version's users against non-users of the same day and marketplace, weighted for who
# chooses to use the assistant (the first 28 days are left out of this adjustment: their
# pre-visit history is cut off by the start of the data). The `lift` row above is the relative
# change of (1 + lift) between the two.

# %%
per_version = comparison.by_version.filter(comparison.by_version["lift_vs_same_day"].is_not_null())
px.scatter(
    per_version,
    x="model_version",
    y="lift_vs_same_day",
    error_y=(per_version["lift_ci_high"] - per_version["lift_vs_same_day"]).to_list(),
    error_y_minus=(per_version["lift_vs_same_day"] - per_version["lift_ci_low"]).to_list(),
    title="Adjusted lift over same-day non-users, by model version (95% intervals)",
).add_hline(y=0, line_dash="dot").update_yaxes(tickformat=".0%").show()
per_version.select(
    "model_version", "lift_vs_same_day", "lift_ci_low", "lift_ci_high", "lift_units_informative"
)

# %% [markdown]
# ## Reading

# %%
print(comparison.note)

# %%
marts.close()
