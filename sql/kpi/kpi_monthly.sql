-- grain: one row per (calendar month, marketplace): monthly active users, growth and year-to-date users (the contract's kpi_monthly)
-- materialized: view
-- order: 40
-- The marketplace rows of kpi_monthly_segments (definitions there and in docs/data-contract.md).
-- Marketplaces overlap in the distinct counts (a user active in two marketplaces counts in both):
-- the month's total is the segment 'all' row of kpi_monthly_segments, not a sum of these rows.
select
    "month",
    segment_value as marketplace,
    month_end,
    days_with_data,
    is_complete,
    mau,
    mau_prev_month,
    mau_growth_mom,
    mau_prev_year,
    mau_growth_yoy,
    users_ytd,
    queries,
    queries_prev_month,
    query_growth_mom,
    queries_prev_year,
    query_growth_yoy,
    sessions,
    visitors,
    buyers,
    orders,
    revenue_usd,
    attributed_revenue_usd,
    attributed_buyers,
    window_days,
    engaged_visitors,
    comparison_visitors,
    engaged_users,
    comparison_users,
    cr_engaged,
    cr_comparison,
    observed_lift,
    observed_lift_ci_low,
    observed_lift_ci_high,
    adjusted_engaged_users,
    adjusted_comparison_users,
    adjusted_lift,
    adjusted_lift_ci_low,
    adjusted_lift_ci_high,
    incremental_revenue_usd,
    incremental_revenue_usd_ci_low,
    incremental_revenue_usd_ci_high,
    annualised_impact_usd,
    annualised_impact_usd_ci_low,
    annualised_impact_usd_ci_high
from kpi_monthly_segments
where dimension = 'marketplace'
