-- grain: one row per (calendar date, currency): the latest delivered rate on or before that date
-- materialized: table
-- order: 10
-- A dense daily table lets order lines take their rate with an equi-join (portable, no ASOF JOIN).
with bounds as (
    select
        min(rate_date) as first_date,
        greatest(
            max(rate_date),
            coalesce((select max(order_date) from stg_orders), max(rate_date))
        ) as last_date
    from stg_fx_rates
),

calendar as (
    select cast(day as date) as calendar_date
    from bounds, unnest(generate_series(
        cast(first_date as timestamp), cast(last_date as timestamp), interval 1 day
    )) as days(day)
),

currencies as (
    select distinct currency from stg_fx_rates
),

candidates as (
    select
        c.calendar_date,
        r.currency,
        r.rate_to_usd,
        r.rate_date,
        row_number() over (
            partition by c.calendar_date, r.currency order by r.rate_date desc
        ) as recency_rank
    from calendar as c
    cross join currencies as cur
    inner join stg_fx_rates as r
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
