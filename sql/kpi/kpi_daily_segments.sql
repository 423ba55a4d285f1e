-- grain: one row per (date, segment): assistant usage, visitors, orders, revenue, attributed revenue and conversion lift of that UTC day
-- materialized: incremental(date)
-- order: 10
-- Segments: 'all' (dimension 'all', segment_value NULL) and 'dimension=value' with dimension
-- marketplace, channel or model_version (a NULL model_version is 'unknown'). Segments OVERLAP: a
-- user active in app and web counts in both channel rows, so never add rows of different segments
-- (distinct counts in particular); read 'all' for the total.
-- Which attribute puts a fact in a segment: interactions (active_users, queries) and sessions by
-- their own marketplace / channel / model_version; visitors by the visit's or session's marketplace
-- / channel (no model_version: NULL there); orders, buyers and revenue by the order line's
-- marketplace (NULL for channel / model_version); attributed revenue and attributed buyers by the
-- order line's marketplace for 'all' / marketplace, by the credited (last-touch) session's channel
-- / model_version for those dimensions. Conversion columns: the day's observed lift row of the
-- same segment name at window $kpi_window_days (NULL where fct_conversion_lift has none, e.g. days
-- whose window is not complete yet); its segments follow the lift rules (docs/lift.md).
-- Rows exist for every (date, segment) with an interaction, a session, a visit or an order line.
-- Input window = output window: every source is read for [start_date, end_date] only.
with interactions as (
    select
        event_date as "date",
        user_id,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel,
        'model_version=' || coalesce(model_version, 'unknown') as by_model_version
    from stg_interactions
    where event_date between $start_date and $end_date
),

sessions as (
    select
        session_date as "date",
        user_id,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel,
        'model_version=' || coalesce(model_version, 'unknown') as by_model_version
    from assistant_sessions
    where session_date between $start_date and $end_date
),

-- storefront visits and assistant sessions: the visitor population (the lift's visitor-days)
presence as (
    select visit_date as "date", user_id,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel
    from stg_visits
    where visit_date between $start_date and $end_date
    union all
    select "date", user_id, by_marketplace, by_channel
    from sessions
),

order_lines as (
    select
        order_date as "date",
        order_id,
        user_id,
        line_status,
        line_revenue_usd,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace
    from int_order_lines
    where order_date between $start_date and $end_date
),

-- the credited touch of each attributed line: last touch, scope user, the KPI window
credited as (
    select
        order_date as "date",
        user_id,
        line_status,
        -- credits are doubles; each credit x revenue is summed as DECIMAL(38,10) (exact and
        -- independent of summation order) and stored rounded to 4 places
        cast(last_touch * cast(line_revenue_usd as double) as decimal(38, 10)) as revenue_usd,
        'marketplace=' || coalesce(marketplace, 'unknown') as by_marketplace,
        'channel=' || coalesce(channel, 'unknown') as by_channel,
        'model_version=' || coalesce(model_version, 'unknown') as by_model_version
    from fct_attribution
    where order_date between $start_date and $end_date
        and scope = 'user'
        and window_days = $kpi_window_days
        and last_touch > 0
),

usage as (
    select
        "date",
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        count(distinct user_id) as active_users,
        count(*) as queries
    from interactions
    group by grouping sets (
        ("date"), ("date", by_marketplace), ("date", by_channel), ("date", by_model_version)
    )
),

session_counts as (
    select
        "date",
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        count(*) as sessions
    from sessions
    group by grouping sets (
        ("date"), ("date", by_marketplace), ("date", by_channel), ("date", by_model_version)
    )
),

visitor_counts as (
    select
        "date",
        coalesce(by_marketplace, by_channel, 'all') as segment,
        count(distinct user_id) as visitors
    from presence
    group by grouping sets (("date"), ("date", by_marketplace), ("date", by_channel))
),

order_counts as (
    select
        "date",
        coalesce(by_marketplace, 'all') as segment,
        count(distinct case when line_status = 'placed' then user_id end) as buyers,
        count(distinct case when line_status = 'placed' then order_id end) as orders,
        sum(line_revenue_usd) as revenue_usd
    from order_lines
    group by grouping sets (("date"), ("date", by_marketplace))
),

attributed as (
    select
        "date",
        coalesce(by_marketplace, by_channel, by_model_version, 'all') as segment,
        sum(revenue_usd) as attributed_revenue_usd,
        -- the population of attributed_revenue_usd: buyers of a placed line with an eligible touch
        count(distinct case when line_status = 'placed' then user_id end) as attributed_buyers
    from credited
    group by grouping sets (
        ("date"), ("date", by_marketplace), ("date", by_channel), ("date", by_model_version)
    )
),

conversion as (
    select
        period_start as "date",
        segment,
        n_engaged,
        n_comparison,
        n_engaged_users,
        n_comparison_users,
        cr_engaged,
        cr_comparison,
        lift,
        lift_ci_low,
        lift_ci_high
    from fct_conversion_lift
    where period_start between $start_date and $end_date
        and period_grain = 'day'
        and method = 'observed'
        and experiment_id is null
        and window_days = $kpi_window_days
),

spine as (
    select "date", segment from usage
    union
    select "date", segment from session_counts
    union
    select "date", segment from visitor_counts
    union
    select "date", segment from order_counts
    union
    select "date", segment from attributed
),

keyed as (
    select
        "date",
        segment,
        case
            when segment = 'all' then 'all'
            when segment like 'marketplace=%' then 'marketplace'
            when segment like 'channel=%' then 'channel'
            else 'model_version'
        end as dimension
    from spine
),

final as (
    select
        k."date",
        k.segment,
        k.dimension,
        case when k.dimension <> 'all' then substr(k.segment, length(k.dimension) + 2) end
            as segment_value,
        cast(coalesce(u.active_users, 0) as bigint) as active_users,
        cast(coalesce(u.queries, 0) as bigint) as queries,
        cast(coalesce(s.sessions, 0) as bigint) as sessions,
        case when k.dimension <> 'model_version' then cast(coalesce(v.visitors, 0) as bigint) end
            as visitors,
        case when k.dimension in ('all', 'marketplace') then cast(coalesce(o.buyers, 0) as bigint) end
            as buyers,
        case when k.dimension in ('all', 'marketplace') then cast(coalesce(o.orders, 0) as bigint) end
            as orders,
        case when k.dimension in ('all', 'marketplace')
            then cast(coalesce(o.revenue_usd, 0) as decimal(18, 4)) end as revenue_usd,
        cast(coalesce(a.attributed_revenue_usd, 0) as decimal(18, 4)) as attributed_revenue_usd,
        cast(coalesce(a.attributed_buyers, 0) as bigint) as attributed_buyers,
        cast($kpi_window_days as integer) as window_days,
        c.n_engaged as engaged_visitors,
        c.n_comparison as comparison_visitors,
        c.n_engaged_users as engaged_users,
        c.n_comparison_users as comparison_users,
        c.cr_engaged,
        c.cr_comparison,
        c.lift as observed_lift,
        c.lift_ci_low as observed_lift_ci_low,
        c.lift_ci_high as observed_lift_ci_high
    from keyed as k
    left join usage as u on u."date" = k."date" and u.segment = k.segment
    left join session_counts as s on s."date" = k."date" and s.segment = k.segment
    left join visitor_counts as v on v."date" = k."date" and v.segment = k.segment
    left join order_counts as o on o."date" = k."date" and o.segment = k.segment
    left join attributed as a on a."date" = k."date" and a.segment = k.segment
    left join conversion as c on c."date" = k."date" and c.segment = k.segment
)

select * from final
