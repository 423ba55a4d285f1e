-- grain: one row per (order line x window x scope x session x rule model): fct_attribution in long form
-- materialized: view
-- order: 15
-- For people who prefer one credit column: model, credit, attributed_revenue_usd (= credit x
-- line_revenue_usd, a double; sum money from fct_attribution_window_sensitivity for exact totals).
select
    order_id, line_no, order_date, user_id, window_days, scope, session_id, session_start,
    touch_type, line_status, line_revenue_usd,
    'first_touch' as model,
    first_touch as credit,
    first_touch * cast(line_revenue_usd as double) as attributed_revenue_usd
from fct_attribution
union all
select
    order_id, line_no, order_date, user_id, window_days, scope, session_id, session_start,
    touch_type, line_status, line_revenue_usd,
    'last_touch' as model,
    last_touch as credit,
    last_touch * cast(line_revenue_usd as double) as attributed_revenue_usd
from fct_attribution
union all
select
    order_id, line_no, order_date, user_id, window_days, scope, session_id, session_start,
    touch_type, line_status, line_revenue_usd,
    'linear' as model,
    linear as credit,
    linear * cast(line_revenue_usd as double) as attributed_revenue_usd
from fct_attribution
union all
select
    order_id, line_no, order_date, user_id, window_days, scope, session_id, session_start,
    touch_type, line_status, line_revenue_usd,
    'time_decay' as model,
    time_decay as credit,
    time_decay * cast(line_revenue_usd as double) as attributed_revenue_usd
from fct_attribution
union all
select
    order_id, line_no, order_date, user_id, window_days, scope, session_id, session_start,
    touch_type, line_status, line_revenue_usd,
    'position_based' as model,
    position_based as credit,
    position_based * cast(line_revenue_usd as double) as attributed_revenue_usd
from fct_attribution
