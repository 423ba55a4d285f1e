-- grain: one row per (date, marketplace): assistant usage, orders and revenue of that UTC day (the contract's kpi_daily)
-- materialized: view
-- order: 20
-- The marketplace rows of kpi_daily_segments (definitions there and in docs/data-contract.md):
-- dau = active_users (distinct users with an assistant interaction in that marketplace); queries:
-- assistant interaction events; sessions: sessions started; orders: orders with a line still
-- placed; revenue_usd: revenue of placed lines; attributed_revenue_usd: last-touch credit x line
-- revenue at the KPI window, scope user. Marketplaces overlap in the distinct counts (a user
-- active in two marketplaces counts in both): the day's total is the segment 'all' row of
-- kpi_daily_segments, not a sum of these rows.
select
    "date",
    segment_value as marketplace,
    active_users as dau,
    queries,
    sessions,
    orders,
    revenue_usd,
    attributed_revenue_usd,
    visitors,
    buyers,
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
    observed_lift_ci_high
from kpi_daily_segments
where dimension = 'marketplace'
