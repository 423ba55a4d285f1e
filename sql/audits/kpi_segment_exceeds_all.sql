-- grain: one row per KPI row whose distinct-user count exceeds that of segment 'all' for the same date or month (a segment is a subset of everyone), or that has no 'all' row
select s.kpi_table, s.period_start, s.segment
from (
    select 'kpi_daily_segments' as kpi_table, "date" as period_start, segment, active_users as users_1,
        visitors as users_2, buyers as users_3, attributed_buyers as users_4
    from kpi_daily_segments
    where "date" between $start_date and $end_date and segment <> 'all'
    union all
    select 'kpi_monthly_segments', "month", segment, mau, visitors, buyers, attributed_buyers
    from kpi_monthly_segments
    where "month" between $start_month and $end_date and segment <> 'all'
) as s
left join (
    select 'kpi_daily_segments' as kpi_table, "date" as period_start, active_users as users_1,
        visitors as users_2, buyers as users_3, attributed_buyers as users_4
    from kpi_daily_segments
    where "date" between $start_date and $end_date and segment = 'all'
    union all
    select 'kpi_monthly_segments', "month", mau, visitors, buyers, attributed_buyers
    from kpi_monthly_segments
    where "month" between $start_month and $end_date and segment = 'all'
) as a on a.kpi_table = s.kpi_table and a.period_start = s.period_start
where a.kpi_table is null
    or s.users_1 > a.users_1 or s.users_2 > a.users_2 or s.users_3 > a.users_3
    or s.users_4 > a.users_4
