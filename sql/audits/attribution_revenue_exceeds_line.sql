-- grain: one row per (order line, window, scope) whose attributed revenue under some model exceeds the line revenue
-- sliced_by: fct_attribution(order_date), 8000000 rows
select order_id, line_no, window_days, scope
from fct_attribution
where order_date between $start_date and $end_date
group by order_id, line_no, window_days, scope
having greatest(
        sum(first_touch), sum(last_touch), sum(linear), sum(time_decay), sum(position_based)
    ) * max(cast(line_revenue_usd as double)) > max(cast(line_revenue_usd as double)) + 1e-6
