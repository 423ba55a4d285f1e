-- grain: one row per (calendar month, segment): monthly active users with growth and year-to-date users, usage, orders, revenue, attributed revenue and the month's conversion lift
-- materialized: incremental(month, month)
-- order: 30
-- Segments as in kpi_daily_segments ('all', marketplace=, channel=, model_version=; they overlap:
-- never add rows of different segments). Every distinct count is over the whole month (never a
-- sum of daily counts).
-- mau: distinct users with an assistant interaction in the month. mau_prev_month / mau_prev_year:
-- the same for the previous month / the same month a year earlier, 0 when that month has data but
-- not this segment, NULL when that month has no data at all (before the data starts);
-- growth = value / previous - 1, NULL when the previous value is NULL or 0. Same for queries.
-- Growth compares calendar months as loaded: a month with is_complete = false or few
-- days_with_data (the data starts or ends inside it) is a partial month.
-- users_ytd: distinct interacting users from 1 January through the month's end (resets every year).
-- Lift columns: the month rows of fct_conversion_lift (period_grain 'month', period_start = month,
-- window $kpi_window_days, segment of the same name): observed (engaged_*/comparison_* counts, cr_*,
-- observed_lift*) and adjusted (adjusted_*, incremental_revenue_usd*). annualised_impact_usd =
-- incremental_revenue_usd x 365 / n_days of that adjusted row (days with units), as the run-rate of
-- attribution.lift.downstream_impact; interval scaled alike.
-- Input window: the output months are [start_month, month of end_date] (whole months); interactions
-- and the data's days are read from 12 months before start_month (previous month, same month last
-- year, and 1 January of start_month's year for the year-to-date count). This model never reads
-- itself. is_complete and the lift rows depend on end_date: the pipeline always builds through
-- the last day with data.
with interactions as (
    select
        cast(date_trunc('month', event_date) as date) as "month",
        cast(date_trunc('year', event_date) as date) as year_start,
        user_id,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel,
        'model_version=' || coalesce(model_version, 'unknown') as by_model_version
    from stg_interactions
    where event_date between cast(cast($start_month as date) - interval 12 month as date)
        and $end_date
),

-- days with any interaction, visit or order: tells a month without data from a quiet segment
data_days as (
    select cast(date_trunc('month', d) as date) as "month", count(*) as days_with_data
    from (
        select event_date as d from stg_interactions
        where event_date between cast(cast($start_month as date) - interval 12 month as date)
            and $end_date
        union
        select visit_date from stg_visits
        where visit_date between cast(cast($start_month as date) - interval 12 month as date)
            and $end_date
        union
        select order_date from int_order_lines
        where order_date between cast(cast($start_month as date) - interval 12 month as date)
            and $end_date
    ) as days
    group by cast(date_trunc('month', d) as date)
),

sessions as (
    select
        cast(date_trunc('month', session_date) as date) as "month",
        user_id,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel,
        'model_version=' || coalesce(model_version, 'unknown') as by_model_version
    from assistant_sessions
    where session_date between $start_month and $end_date
),

presence as (
    select cast(date_trunc('month', visit_date) as date) as "month", user_id,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel
    from stg_visits
    where visit_date between $start_month and $end_date
    union all
    select "month", user_id, by_marketplace, by_channel
    from sessions
),

order_lines as (
    select
        cast(date_trunc('month', order_date) as date) as "month",
        order_id,
        user_id,
        line_status,
        line_revenue_usd,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace
    from int_order_lines
    where order_date between $start_month and $end_date
),

credited as (
    select
        cast(date_trunc('month', order_date) as date) as "month",
        user_id,
        line_status,
        -- each credit x revenue summed as DECIMAL(38,10): exact and order-independent
        cast(last_touch * cast(line_revenue_usd as double) as decimal(38, 10)) as revenue_usd,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel,
        'model_version=' || coalesce(model_version, 'unknown') as by_model_version
    from fct_attribution
    where order_date between $start_month and $end_date
        and scope = 'user'
        and window_days = $kpi_window_days
        and last_touch > 0
),

-- every month of the lookback too: the previous month and the previous year are looked up here
usage as (
    select
        "month",
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        count(distinct user_id) as mau,
        count(*) as queries
    from interactions
    group by grouping sets (
        ("month"), ("month", by_marketplace), ("month", by_channel), ("month", by_model_version)
    )
),

-- year to date in one pass: the first active month of each user per year and segment ...
first_active as (
    select
        year_start,
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        min("month") as first_month
    from interactions
    where year_start >= cast(date_trunc('year', cast($start_month as date)) as date)
    group by grouping sets (
        (user_id, year_start),
        (user_id, year_start, by_marketplace),
        (user_id, year_start, by_channel),
        (user_id, year_start, by_model_version)
    )
),

-- ... counted per month; users_ytd = the running total of these within the year
new_users as (
    select year_start, segment, first_month, count(*) as n_new
    from first_active
    group by year_start, segment, first_month
),

session_counts as (
    select
        "month",
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        count(*) as sessions
    from sessions
    group by grouping sets (
        ("month"), ("month", by_marketplace), ("month", by_channel), ("month", by_model_version)
    )
),

visitor_counts as (
    select
        "month",
        coalesce(by_marketplace, by_channel, 'all') as segment,
        count(distinct user_id) as visitors
    from presence
    group by grouping sets (("month"), ("month", by_marketplace), ("month", by_channel))
),

order_counts as (
    select
        "month",
        coalesce(by_marketplace, 'all') as segment,
        count(distinct case when line_status = 'placed' then user_id end) as buyers,
        count(distinct case when line_status = 'placed' then order_id end) as orders,
        sum(line_revenue_usd) as revenue_usd
    from order_lines
    group by grouping sets (("month"), ("month", by_marketplace))
),

attributed as (
    select
        "month",
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        sum(revenue_usd) as attributed_revenue_usd,
        count(distinct case when line_status = 'placed' then user_id end) as attributed_buyers
    from credited
    group by grouping sets (
        ("month"), ("month", by_marketplace), ("month", by_channel), ("month", by_model_version)
    )
),

lift as (
    select *
    from fct_conversion_lift
    where period_start between $start_month and $end_date
        and period_grain = 'month'
        and method in ('observed', 'adjusted')
        and experiment_id is null
        and window_days = $kpi_window_days
),

spine as (
    select "month", segment from usage where "month" >= $start_month
    union
    select "month", segment from session_counts
    union
    select "month", segment from visitor_counts
    union
    select "month", segment from order_counts
    union
    select "month", segment from attributed
),

keyed as (
    select
        "month",
        segment,
        case
            when segment = 'all' then 'all'
            when segment like 'marketplace=%' then 'marketplace'
            when segment like 'channel=%' then 'channel'
            else 'model_version'
        end as dimension,
        cast("month" - interval 1 month as date) as prev_month,
        cast("month" - interval 12 month as date) as prev_year_month
    from spine
),

ytd as (
    select k."month", k.segment, sum(n.n_new) as users_ytd
    from keyed as k
    inner join new_users as n
        on n.segment = k.segment
        and n.year_start = cast(date_trunc('year', k."month") as date)
        and n.first_month <= k."month"
    group by k."month", k.segment
),

counts as (
    select
        k.*,
        cast(coalesce(u.mau, 0) as bigint) as mau,
        case when dm.days_with_data > 0 then cast(coalesce(pm.mau, 0) as bigint) end
            as mau_prev_month,
        case when dy.days_with_data > 0 then cast(coalesce(py.mau, 0) as bigint) end
            as mau_prev_year,
        cast(coalesce(u.queries, 0) as bigint) as queries,
        case when dm.days_with_data > 0 then cast(coalesce(pm.queries, 0) as bigint) end
            as queries_prev_month,
        case when dy.days_with_data > 0 then cast(coalesce(py.queries, 0) as bigint) end
            as queries_prev_year,
        cast(coalesce(y.users_ytd, 0) as bigint) as users_ytd,
        cast(coalesce(d.days_with_data, 0) as integer) as days_with_data
    from keyed as k
    left join usage as u on u."month" = k."month" and u.segment = k.segment
    left join usage as pm on pm."month" = k.prev_month and pm.segment = k.segment
    left join usage as py on py."month" = k.prev_year_month and py.segment = k.segment
    left join data_days as d on d."month" = k."month"
    left join data_days as dm on dm."month" = k.prev_month
    left join data_days as dy on dy."month" = k.prev_year_month
    left join ytd as y on y."month" = k."month" and y.segment = k.segment
),

final as (
    select
        c."month",
        last_day(c."month") as month_end,
        c.days_with_data,
        last_day(c."month") <= cast($end_date as date) as is_complete,
        c.segment,
        c.dimension,
        case when c.dimension <> 'all' then substr(c.segment, length(c.dimension) + 2) end
            as segment_value,
        c.mau,
        c.mau_prev_month,
        cast(c.mau as double) / nullif(c.mau_prev_month, 0) - 1e0 as mau_growth_mom,
        c.mau_prev_year,
        cast(c.mau as double) / nullif(c.mau_prev_year, 0) - 1e0 as mau_growth_yoy,
        c.users_ytd,
        c.queries,
        c.queries_prev_month,
        cast(c.queries as double) / nullif(c.queries_prev_month, 0) - 1e0 as query_growth_mom,
        c.queries_prev_year,
        cast(c.queries as double) / nullif(c.queries_prev_year, 0) - 1e0 as query_growth_yoy,
        cast(coalesce(s.sessions, 0) as bigint) as sessions,
        case when c.dimension <> 'model_version' then cast(coalesce(v.visitors, 0) as bigint) end
            as visitors,
        case when c.dimension in ('all', 'marketplace') then cast(coalesce(o.buyers, 0) as bigint) end
            as buyers,
        case when c.dimension in ('all', 'marketplace') then cast(coalesce(o.orders, 0) as bigint) end
            as orders,
        case when c.dimension in ('all', 'marketplace')
            then cast(coalesce(o.revenue_usd, 0) as decimal(18, 4)) end as revenue_usd,
        cast(coalesce(a.attributed_revenue_usd, 0) as decimal(18, 4)) as attributed_revenue_usd,
        cast(coalesce(a.attributed_buyers, 0) as bigint) as attributed_buyers,
        cast($kpi_window_days as integer) as window_days,
        ob.n_engaged as engaged_visitors,
        ob.n_comparison as comparison_visitors,
        ob.n_engaged_users as engaged_users,
        ob.n_comparison_users as comparison_users,
        ob.cr_engaged,
        ob.cr_comparison,
        ob.lift as observed_lift,
        ob.lift_ci_low as observed_lift_ci_low,
        ob.lift_ci_high as observed_lift_ci_high,
        -- the adjusted comparison leaves trimmed units out: its own distinct-user counts
        ad.n_engaged_users as adjusted_engaged_users,
        ad.n_comparison_users as adjusted_comparison_users,
        ad.lift as adjusted_lift,
        ad.lift_ci_low as adjusted_lift_ci_low,
        ad.lift_ci_high as adjusted_lift_ci_high,
        ad.incremental_revenue_usd,
        ad.incremental_revenue_ci_low as incremental_revenue_usd_ci_low,
        ad.incremental_revenue_ci_high as incremental_revenue_usd_ci_high,
        ad.incremental_revenue_usd * 365e0 / nullif(ad.n_days, 0) as annualised_impact_usd,
        ad.incremental_revenue_ci_low * 365e0 / nullif(ad.n_days, 0)
            as annualised_impact_usd_ci_low,
        ad.incremental_revenue_ci_high * 365e0 / nullif(ad.n_days, 0)
            as annualised_impact_usd_ci_high
    from counts as c
    left join session_counts as s on s."month" = c."month" and s.segment = c.segment
    left join visitor_counts as v on v."month" = c."month" and v.segment = c.segment
    left join order_counts as o on o."month" = c."month" and o.segment = c.segment
    left join attributed as a on a."month" = c."month" and a.segment = c.segment
    left join lift as ob
        on ob.period_start = c."month" and ob.segment = c.segment and ob.method = 'observed'
    left join lift as ad
        on ad.period_start = c."month" and ad.segment = c.segment and ad.method = 'adjusted'
)

select * from final
