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
# # Lift deep dive: what "X% more likely to buy" really means
#
# "Users of the assistant are 60% more likely to buy" compares people who *chose* to use it with
# people who did not. Those who choose it were often going to buy anyway. This notebook puts
# the three estimates of `fct_conversion_lift` side by side and checks the one that corrects for
# that choice:
#
# 1. observed vs adjusted vs experiment, with 95% intervals, for every window;
# 2. balance and overlap diagnostics of the adjustment (is the comparison fair?);
# 3. effects by segment, with p-values adjusted for testing many segments at once;
# 4. the claim in plain words and absolute numbers, and the money behind it.
#
# It reads the warehouse through `attribution.open_marts` (docs/api.md, methods in docs/lift.md).

# %% tags=["parameters"]
warehouse_path = None
window_days = 7

# %%
import plotly.express as px
import plotly.graph_objects as go

import attribution

marts = attribution.open_marts(warehouse_path)
lifts = marts.lift(window_days)
lifts.select(
    "method",
    "experiment_id",
    "n_engaged",
    "n_comparison",
    "cr_engaged",
    "cr_comparison",
    "lift",
    "ci_low",
    "ci_high",
    "p_value_bh",
)

# %% [markdown]
# ## 1. Observed vs adjusted vs experiment
#
# * **observed**: engaged visitors vs visitors who did not use the assistant the same day;
# * **adjusted**: the same, with non-users weighted to look like users before the visit
#   (orders, revenue and visit days in the previous 28 days, tenure, marketplace, channel);
# * **experiment**: users randomly offered the assistant vs a held-out group (intent to treat):
#   the only estimate that needs no assumption about who chooses to use it, usually the widest.

# %%
by_window = marts.lift_by_window()
fig = go.Figure()
for method, part in by_window.group_by("method", maintain_order=True):
    fig.add_trace(
        go.Scatter(
            x=part["window_days"],
            y=part["lift"],
            mode="markers+lines",
            name=method[0],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (part["ci_high"] - part["lift"]).to_list(),
                "arrayminus": (part["lift"] - part["ci_low"]).to_list(),
            },
        )
    )
fig.add_hline(y=0, line_dash="dot")
fig.update_layout(
    title="Conversion lift by method and window (95% intervals)",
    xaxis_title="window (days)",
    yaxis_title="lift",
    yaxis_tickformat=".0%",
).show()
by_window

# %% [markdown]
# ## 2. Is the adjusted comparison fair? Balance and overlap
#
# Balance: the standardised mean difference (SMD) of each pre-visit covariate between users and
# non-users, before and after weighting. After weighting every |SMD| should be below 0.1.
# Balance can only be checked on what we observe; an unobserved reason to both use the
# assistant and buy stays in the adjusted estimate (the experiment is the check on that).

# %%
print(marts.balance_verdict(window_days))
balance = marts.balance(window_days)
px.scatter(
    balance,
    x="smd_before",
    y="covariate",
    title="Covariate balance before (x) and after (diamond) weighting",
).add_scatter(
    x=balance["smd_after"],
    y=balance["covariate"],
    mode="markers",
    marker_symbol="diamond",
    name="after weighting",
).add_vline(x=0.1, line_dash="dot").add_vline(x=-0.1, line_dash="dot").show()
balance

# %% [markdown]
# Overlap: for every user there should be comparable non-users. The propensity score is each
# visitor-day's modelled chance of using the assistant; the two distributions must overlap, and
# few units may be trimmed (propensity outside 0.01-0.99).

# %%
scores = marts.propensity_scores(window_days)
px.histogram(
    scores.with_columns(
        scores["is_engaged"]
        .replace_strict({True: "used the assistant", False: "did not"})
        .alias("group")
    ),
    x="propensity",
    color="group",
    histnorm="probability density",
    barmode="overlay",
    nbins=40,
    title="Propensity to use the assistant, users vs non-users",
).show()
marts.overlap(window_days)

# %% [markdown]
# ## 3. Segment effects
#
# The adjusted lift per marketplace, channel, buyer type, model version and event type. With
# twenty-odd segments a few 95% intervals exclude zero by chance alone, so a segment is called
# **significant** only when its Benjamini-Hochberg adjusted p-value (false discovery rate 5%)
# is below 0.05.

# %%
segments = marts.segment_lift(window_days, method="adjusted")
px.scatter(
    segments.with_columns((segments["dimension"] + "=" + segments["value"]).alias("segment")),
    x="lift",
    y="segment",
    color="significant",
    error_x=(segments["ci_high"] - segments["lift"]).to_list(),
    error_x_minus=(segments["lift"] - segments["ci_low"]).to_list(),
    title=f"Adjusted lift by segment, {window_days}-day window (95% intervals)",
).add_vline(x=0, line_dash="dot").update_xaxes(tickformat=".0%").show()
segments.select(
    "dimension",
    "value",
    "n_engaged",
    "lift",
    "ci_low",
    "ci_high",
    "p_value",
    "p_value_bh",
    "significant",
)

# %% [markdown]
# Note the `model_version` rows: each compares one version's users with *all* non-users of the
# whole period, so a version that ran later is also compared across time. The model-version
# notebook (03) controls for the calendar.
#
# ## 4. In plain words, and in money

# %%
for sentence in marts.lift_in_plain_words(window_days):
    print("-", sentence)

# %%
marts.lift_arithmetic(window_days).select(
    "method",
    "cr_engaged",
    "cr_comparison",
    "lift",
    "difference_points",
    "extra_buyers_per_1000",
    "units_per_extra_buyer",
)

# %% [markdown]
# Attributed revenue (what the assistant "touched") is not incremental revenue (what it
# caused). The run-rate scales the period's incremental revenue to a year.

# %%
marts.impact(window_days).select(
    "method",
    "attributed_revenue_usd",
    "incremental_revenue_usd",
    "incremental_revenue_ci_low",
    "incremental_revenue_ci_high",
    "run_rate_usd",
)

# %%
marts.close()
