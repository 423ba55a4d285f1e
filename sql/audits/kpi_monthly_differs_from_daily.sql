-- grain: one row per (month, segment) whose queries, sessions, revenue or attributed revenue differ from the sum of its days in kpi_daily_segments
-- Additive measures only (distinct counts are not additive over days). Money: each day is stored
-- rounded to 4 places, so a month may differ from its days' sum by rounding (0.01 tolerated).
with days as (
    select
        cast(date_trunc('month', "date") as date) as "month",
        segment,
        sum(queries) as queries,
        sum(sessions) as sessions,
        sum(revenue_usd) as revenue_usd,
        sum(attributed_revenue_usd) as attributed_revenue_usd
    from kpi_daily_segments
    where "date" between $start_month and $end_date
    group by cast(date_trunc('month', "date") as date), segment
)

select m."month", m.segment, m.queries, d.queries as daily_queries, m.sessions,
    d.sessions as daily_sessions, m.revenue_usd, d.revenue_usd as daily_revenue_usd,
    m.attributed_revenue_usd, d.attributed_revenue_usd as daily_attributed_revenue_usd
from kpi_monthly_segments as m
full outer join days as d on d."month" = m."month" and d.segment = m.segment
where coalesce(m."month", d."month") between $start_month and $end_date
    and (
        m."month" is null or d."month" is null
        or m.queries <> d.queries or m.sessions <> d.sessions
        or abs(coalesce(m.revenue_usd, 0) - coalesce(d.revenue_usd, 0)) > 0.01
        or abs(m.attributed_revenue_usd - d.attributed_revenue_usd) > 0.01
    )
