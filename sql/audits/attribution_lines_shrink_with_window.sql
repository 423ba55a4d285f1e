-- grain: one row per (scope, window pair) where a larger window attributes fewer lines than a smaller one
with attributed_lines as (  -- distinct keys first: a plain (spillable) aggregate, no string keys
    select distinct scope, window_days, order_id, line_no
    from fct_attribution
    where order_date between $start_date and $end_date
),

attributed as (
    select scope, window_days, count(*) as n_lines
    from attributed_lines
    group by scope, window_days
)

select smaller.scope, smaller.window_days as smaller_window, larger.window_days as larger_window,
    smaller.n_lines as smaller_lines, larger.n_lines as larger_lines
from attributed as smaller
inner join attributed as larger
    on larger.scope = smaller.scope and larger.window_days > smaller.window_days
where larger.n_lines < smaller.n_lines
