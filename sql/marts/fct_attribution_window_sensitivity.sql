-- grain: one row per (order date x window x scope): attributed lines and attributed revenue of every rule model
-- materialized: incremental(order_date)
-- order: 30
-- Window sensitivity: how much revenue each window credits to the assistant. Credits are doubles;
-- each credit x revenue is cast to DECIMAL(38,10) before summing (exact, order-independent sums)
-- and stored rounded to 4 decimal places. touch_rank = 1 picks one row per attributed line.
with attributed as (
    select
        *,
        cast(line_revenue_usd as double) as revenue
    from fct_attribution
    where order_date between $start_date and $end_date
),

final as (
    select
        order_date,
        window_days,
        scope,
        sum(case when touch_rank = 1 then 1 else 0 end) as attributed_lines,
        -- cancelled and returned lines carry zero revenue: counted apart, with their amount
        sum(case when touch_rank = 1 and line_status = 'cancelled' then 1 else 0 end)
            as cancelled_lines,
        sum(case when touch_rank = 1 and line_status = 'returned' then 1 else 0 end)
            as returned_lines,
        cast(sum(
            case when touch_rank = 1 and line_status <> 'placed' then line_amount_usd else 0 end
        ) as decimal(18, 4)) as cancelled_or_returned_amount_usd,
        cast(sum(case when touch_rank = 1 then line_revenue_usd else 0 end) as decimal(18, 4))
            as line_revenue_usd,
        cast(sum(cast(first_touch * revenue as decimal(38, 10))) as decimal(18, 4))
            as first_touch_revenue_usd,
        cast(sum(cast(last_touch * revenue as decimal(38, 10))) as decimal(18, 4))
            as last_touch_revenue_usd,
        cast(sum(cast(linear * revenue as decimal(38, 10))) as decimal(18, 4))
            as linear_revenue_usd,
        cast(sum(cast(time_decay * revenue as decimal(38, 10))) as decimal(18, 4))
            as time_decay_revenue_usd,
        cast(sum(cast(position_based * revenue as decimal(38, 10))) as decimal(18, 4))
            as position_based_revenue_usd
    from attributed
    group by order_date, window_days, scope
)

select * from final
