-- grain: one row per (order line x window x scope x session x rule model): fct_attribution in long form
-- materialized: view
-- order: 15
-- For people who prefer one credit column: model, credit, attributed_revenue_usd (= credit x
-- line_revenue_usd, a double; sum money from fct_attribution_window_sensitivity for exact totals).
with rule_models as (
    select model from (values ('first_touch'), ('last_touch'), ('linear'), ('time_decay'), ('position_based')) as m(model)
),

credited as (
    select
        a.order_id,
        a.line_no,
        a.order_date,
        a.user_id,
        a.window_days,
        a.scope,
        a.session_id,
        a.session_start,
        a.touch_type,
        a.line_status,
        a.line_revenue_usd,
        m.model,
        case m.model
            when 'first_touch' then a.first_touch
            when 'last_touch' then a.last_touch
            when 'linear' then a.linear
            when 'time_decay' then a.time_decay
            when 'position_based' then a.position_based
        end as credit
    from fct_attribution as a
    cross join rule_models as m
)

select
    *,
    credit * cast(line_revenue_usd as double) as attributed_revenue_usd
from credited
