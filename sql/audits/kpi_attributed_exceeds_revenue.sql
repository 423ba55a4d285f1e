-- grain: one row per KPI row of segment 'all' or a marketplace whose attributed revenue (or attributed buyers) exceeds its revenue (or buyers)
-- Attributed revenue is credit x revenue of the same placed lines (credits of a line sum to at
-- most 1): it can exceed revenue only through rounding (0.01 tolerated) or a bug.
select 'kpi_daily_segments' as kpi_table, "date" as period_start, segment,
    revenue_usd, attributed_revenue_usd, buyers, attributed_buyers
from kpi_daily_segments
where "date" between $start_date and $end_date
    and dimension in ('all', 'marketplace')
    and (attributed_revenue_usd > revenue_usd + 0.01 or attributed_buyers > buyers)
union all
select 'kpi_monthly_segments', "month", segment,
    revenue_usd, attributed_revenue_usd, buyers, attributed_buyers
from kpi_monthly_segments
where "month" between $start_month and $end_date
    and dimension in ('all', 'marketplace')
    and (attributed_revenue_usd > revenue_usd + 0.01 or attributed_buyers > buyers)
