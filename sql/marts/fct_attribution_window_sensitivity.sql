-- grain: one row per (order date x window x scope): attributed lines and attributed revenue of every rule model
-- materialized: incremental(order_date)
-- order: 30
-- Window sensitivity: how much revenue each window credits to the assistant. Credits are doubles;
-- attributed revenue is rounded to 4 decimal places where it is stored.
with line_totals as (
    select
        order_date,
        window_days,
        scope,
        order_id,
        line_no,
        max(line_revenue_usd) as line_revenue_usd,
        sum(first_touch) as first_touch,
        sum(last_touch) as last_touch,
        sum(linear) as linear,
        sum(time_decay) as time_decay,
        sum(position_based) as position_based
    from fct_attribution
    where order_date between $start_date and $end_date
    group by order_date, window_days, scope, order_id, line_no
),

final as (
    select
        order_date,
        window_days,
        scope,
        count(*) as attributed_lines,
        cast(sum(line_revenue_usd) as decimal(18, 4)) as line_revenue_usd,
        cast(round(sum(first_touch * cast(line_revenue_usd as double)), 4) as decimal(18, 4))
            as first_touch_revenue_usd,
        cast(round(sum(last_touch * cast(line_revenue_usd as double)), 4) as decimal(18, 4))
            as last_touch_revenue_usd,
        cast(round(sum(linear * cast(line_revenue_usd as double)), 4) as decimal(18, 4))
            as linear_revenue_usd,
        cast(round(sum(time_decay * cast(line_revenue_usd as double)), 4) as decimal(18, 4))
            as time_decay_revenue_usd,
        cast(round(sum(position_based * cast(line_revenue_usd as double)), 4) as decimal(18, 4))
            as position_based_revenue_usd
    from line_totals
    group by order_date, window_days, scope
)

select * from final
