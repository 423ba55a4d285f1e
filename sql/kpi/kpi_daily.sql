-- grain: one row per (date, marketplace): assistant usage, orders and revenue of that UTC day
-- materialized: incremental(date)
-- order: 10
-- dau: distinct users with an assistant interaction; queries: assistant interaction events (every
-- message or click sent to the assistant); sessions: sessions started; orders: orders with a line
-- still placed; revenue_usd: revenue of placed lines; attributed_revenue_usd: last-touch credit x
-- line revenue at window $kpi_window_days, scope user (the default headline model).
with interactions as (
    select event_date as "date", marketplace, count(distinct user_id) as dau, count(*) as queries
    from stg_interactions
    where event_date between $start_date and $end_date
    group by event_date, marketplace
),

sessions as (
    select session_date as "date", marketplace, count(*) as sessions
    from assistant_sessions
    where session_date between $start_date and $end_date
    group by session_date, marketplace
),

orders as (
    select
        order_date as "date",
        marketplace,
        sum(case when is_placed then 1 else 0 end) as orders,
        sum(order_revenue_usd) as revenue_usd
    from int_orders
    where order_date between $start_date and $end_date
    group by order_date, marketplace
),

attributed as (
    select
        order_date as "date",
        marketplace,
        sum(cast(last_touch * cast(line_revenue_usd as double) as decimal(38, 10)))
            as attributed_revenue_usd
    from fct_attribution
    where order_date between $start_date and $end_date
        and scope = 'user'
        and window_days = $kpi_window_days
    group by order_date, marketplace
),

spine as (
    select "date", marketplace from interactions
    union
    select "date", marketplace from sessions
    union
    select "date", marketplace from orders
),

final as (
    select
        s."date",
        s.marketplace,
        coalesce(i.dau, 0) as dau,
        coalesce(i.queries, 0) as queries,
        coalesce(se.sessions, 0) as sessions,
        coalesce(o.orders, 0) as orders,
        cast(coalesce(o.revenue_usd, 0) as decimal(18, 4)) as revenue_usd,
        -- credits are doubles; each credit x revenue is summed as DECIMAL(38,10) (exact and
        -- independent of summation order) and stored rounded to 4 places
        cast(coalesce(a.attributed_revenue_usd, 0) as decimal(18, 4)) as attributed_revenue_usd
    from spine as s
    left join interactions as i on i."date" = s."date" and i.marketplace = s.marketplace
    left join sessions as se on se."date" = s."date" and se.marketplace = s.marketplace
    left join orders as o on o."date" = s."date" and o.marketplace = s.marketplace
    left join attributed as a on a."date" = s."date" and a.marketplace = s.marketplace
)

select * from final
