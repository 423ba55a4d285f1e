-- grain: one row per KPI key (date or month, segment) that appears more than once or whose segment, dimension and segment_value disagree
with keys as (
    select 'kpi_daily_segments' as kpi_table, "date" as period_start, segment, dimension,
        segment_value
    from kpi_daily_segments
    where "date" between $start_date and $end_date
    union all
    select 'kpi_monthly_segments', "month", segment, dimension, segment_value
    from kpi_monthly_segments
    where "month" between $start_month and $end_date
)

select kpi_table, period_start, segment, count(*) as n_rows
from keys
group by kpi_table, period_start, segment
having count(*) > 1
    or max(case
        when dimension = 'all' and segment = 'all' and segment_value is null then 0
        when dimension in ('marketplace', 'channel', 'model_version')
            and segment = dimension || '=' || segment_value then 0
        else 1
    end) = 1
