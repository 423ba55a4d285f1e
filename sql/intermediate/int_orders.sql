-- grain: one row per order: when it was placed, by whom, whether any line is still placed, revenue
-- materialized: incremental(order_date)
-- order: 60
with lines as (
    select *
    from int_order_lines
    where order_date between $start_date and $end_date
),

final as (
    select
        order_id,
        min(user_id) as user_id,
        min(order_at) as order_at,
        min(order_date) as order_date,
        min(marketplace) as marketplace,
        count(*) as n_lines,
        max(case when line_status = 'placed' then 1 else 0 end) = 1 as is_placed,
        cast(sum(line_revenue_usd) as decimal(18, 4)) as order_revenue_usd
    from lines
    group by order_id
)

select * from final
