-- grain: one row per (order date x window x scope x lag bucket): attributed lines by the lag between the last eligible session and the purchase
-- materialized: incremental(order_date)
-- order: 40
-- lag = order_at - session_start of the line's last eligible touch (touch_rank = n_touches).
-- Buckets are closed on the left: [0 h, 1 h), [1 h, 6 h), ..., [14 d, 30 d], then beyond.
with last_touches as (
    select
        order_date,
        window_days,
        scope,
        line_revenue_usd,
        session_age_hours
    from fct_attribution
    where order_date between $start_date and $end_date
        and touch_rank = n_touches
),

bucketed as (
    select
        *,
        case
            when session_age_hours < 1 then 1
            when session_age_hours < 6 then 2
            when session_age_hours < 24 then 3
            when session_age_hours < 48 then 4
            when session_age_hours < 72 then 5
            when session_age_hours < 168 then 6
            when session_age_hours < 336 then 7
            when session_age_hours <= 720 then 8
            else 9
        end as lag_bucket_order
    from last_touches
),

final as (
    select
        order_date,
        window_days,
        scope,
        lag_bucket_order,
        case lag_bucket_order
            when 1 then '0-1h'
            when 2 then '1-6h'
            when 3 then '6-24h'
            when 4 then '1-2d'
            when 5 then '2-3d'
            when 6 then '3-7d'
            when 7 then '7-14d'
            when 8 then '14-30d'
            else '30d+'
        end as lag_bucket,
        count(*) as attributed_lines,
        cast(sum(line_revenue_usd) as decimal(18, 4)) as line_revenue_usd
    from bucketed
    group by order_date, window_days, scope, lag_bucket_order
)

select * from final
