-- grain: one row per (order line, window, scope) whose credits under some rule model do not sum to 1 (within 1e-9)
-- sliced_by: fct_attribution(order_date), 8000000 rows
select order_id, line_no, window_days, scope,
    sum(first_touch) as first_touch, sum(last_touch) as last_touch, sum(linear) as linear,
    sum(time_decay) as time_decay, sum(position_based) as position_based
from fct_attribution
where order_date between $start_date and $end_date
group by order_id, line_no, window_days, scope
having abs(sum(first_touch) - 1) > 1e-9
    or abs(sum(last_touch) - 1) > 1e-9
    or abs(sum(linear) - 1) > 1e-9
    or abs(sum(time_decay) - 1) > 1e-9
    or abs(sum(position_based) - 1) > 1e-9
