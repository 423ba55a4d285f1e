-- grain: one row per KPI row (daily or monthly, any segment) with a conversion rate outside [0, 1] or a negative count or amount
select 'kpi_daily_segments' as kpi_table, "date" as period_start, segment
from kpi_daily_segments
where "date" between $start_date and $end_date
    and (
        cr_engaged < 0 or cr_engaged > 1 or cr_comparison < 0 or cr_comparison > 1
        or active_users < 0 or queries < 0 or sessions < 0 or visitors < 0 or buyers < 0
        or orders < 0 or revenue_usd < 0 or attributed_revenue_usd < 0 or attributed_buyers < 0
        or engaged_users > engaged_visitors or comparison_users > comparison_visitors
    )
union all
select 'kpi_monthly_segments', "month", segment
from kpi_monthly_segments
where "month" between $start_month and $end_date
    and (
        cr_engaged < 0 or cr_engaged > 1 or cr_comparison < 0 or cr_comparison > 1
        or mau < 0 or queries < 0 or sessions < 0 or visitors < 0 or buyers < 0 or orders < 0
        or revenue_usd < 0 or attributed_revenue_usd < 0 or attributed_buyers < 0
        or engaged_users > engaged_visitors or comparison_users > comparison_visitors
        or days_with_data < 1
        or days_with_data > date_diff('day', cast("month" as date), cast(month_end as date)) + 1
    )
