-- grain: one row per attribution row whose session starts after the order or before the window opens
-- sliced_by: fct_attribution(order_date), 8000000 rows
select order_id, line_no, window_days, scope, session_id, session_start, order_at
from fct_attribution
where order_date between $start_date and $end_date
    and (
        session_start > order_at
        or date_diff('microsecond', session_start, order_at)
            > cast(window_days as bigint) * 86400000000
    )
