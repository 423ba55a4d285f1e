-- grain: one row per order line of the window that has no FX rate on or before its order date
select order_id, line_no, order_date, currency
from int_order_lines
where order_date between $start_date and $end_date
    and rate_to_usd is null
