-- grain: one row per order line (order_id, line_no) in its latest state, with its value in USD
-- materialized: incremental(order_date)
-- order: 50
-- FX: the rate of the order date (latest delivered rate on or before it, int_fx_daily).
-- Money: line_amount_usd = round(amount * rate_to_usd, 4) as DECIMAL(18,4); cancelled and
-- returned lines keep their amount but carry line_revenue_usd = 0 (reported apart, never deleted).
with lines as (
    select *
    from stg_orders
    where order_date between $start_date and $end_date
),

final as (
    select
        l.order_id,
        l.line_no,
        l.user_id,
        l.order_at,
        l.order_date,
        l.marketplace,
        l.product_id,
        l.quantity,
        l.amount,
        l.currency,
        l.line_status,
        l.updated_at,
        l.n_versions,
        fx.rate_to_usd,
        cast(round(l.amount * fx.rate_to_usd, 4) as decimal(18, 4)) as line_amount_usd,
        cast(
            case
                when l.line_status = 'placed' then round(l.amount * fx.rate_to_usd, 4)
                else 0
            end as decimal(18, 4)
        ) as line_revenue_usd
    from lines as l
    left join int_fx_daily as fx
        on fx.currency = l.currency and fx.rate_date = l.order_date
)

select * from final
