-- grain: one row per (calendar date, currency): the latest delivered rate on or before that date
-- materialized: table
-- order: 10
-- A dense daily table lets order lines take their rate with an equi-join (portable, no ASOF JOIN).
-- USD (the reporting currency) is 1 on every day by definition; delivered USD rows are ignored.
-- The calendar spans the delivered rates and the orders.
with bounds as (
    select
        least(
            coalesce((select min(rate_date) from stg_fx_rates), max_order_date),
            min_order_date
        ) as first_date,
        greatest(
            coalesce((select max(rate_date) from stg_fx_rates), max_order_date),
            max_order_date
        ) as last_date
    from (
        select min(order_date) as min_order_date, max(order_date) as max_order_date
        from stg_orders
    ) as o
),

calendar as (
    select cast(day as date) as calendar_date
    from bounds, unnest(generate_series(
        cast(first_date as timestamp), cast(last_date as timestamp), interval 1 day
    )) as days(day)
    where first_date is not null
),

delivered as (
    select rate_date, currency, rate_to_usd
    from stg_fx_rates
    where currency <> 'USD'
    union all
    select calendar_date, 'USD', cast(1 as decimal(18, 8))
    from calendar
),

currencies as (
    select distinct currency from delivered
),

candidates as (
    select
        c.calendar_date,
        r.currency,
        r.rate_to_usd,
        r.rate_date,
        row_number() over (
            partition by c.calendar_date, r.currency order by r.rate_date desc nulls last
        ) as recency_rank
    from calendar as c
    cross join currencies as cur
    inner join delivered as r
        on r.currency = cur.currency and r.rate_date <= c.calendar_date
),

final as (
    select
        calendar_date as rate_date,
        currency,
        rate_to_usd,
        rate_date as delivered_rate_date
    from candidates
    where recency_rank = 1
)

select * from final
