-- grain: one row per (order line, window, scope) whose touch ranks are not exactly 1..n_touches
-- sliced_by: fct_attribution(order_date), 8000000 rows
select order_id, line_no, window_days, scope
from fct_attribution
where order_date between $start_date and $end_date
group by order_id, line_no, window_days, scope
having count(*) <> max(n_touches) or count(distinct touch_rank) <> count(*) or max(touch_rank) <> count(*)
