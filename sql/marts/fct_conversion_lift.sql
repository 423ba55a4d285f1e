-- grain: one row per (period x segment x method x window x experiment); this model: method 'observed', daily periods, segments all/marketplace/channel (attribution.lift adds the rest)
-- materialized: incremental(period_start)
-- sliced_by: stg_visits(visit_date)
-- order: 20
-- Population: visitor-days (a user with a storefront visit or an assistant session on a UTC day).
-- Engaged: the user had an assistant session that day. Index time: the day's first visit or session.
-- Converted in window W: an order with a line still placed, at index_at <= order_at <= index_at + W
-- days. Only visitor-days whose whole window lies inside the data (activity_date + W <= end_date)
-- are counted, so a day's numbers do not change as later orders arrive.
-- Interval: 95% delta-method interval on log(cr_engaged / cr_comparison) (binomial, units treated as
-- independent), mirrored in attribution.stats.ratio_lift_interval.
-- Input window = output window + lookahead: orders up to max_window_days after end_date (none
-- exist beyond the data's end; the completeness filter keeps that honest). Built in slices of
-- visit days (memory): end_date is the slice's last day, data_end_date the data's.
with activity as (
    select user_id, visit_date as activity_date, visit_at as activity_at, marketplace, channel,
        0 as is_session
    from stg_visits
    where visit_date between $start_date and $end_date
    union all
    select user_id, session_date, session_start, marketplace, channel, 1
    from assistant_sessions
    where session_date between $start_date and $end_date
),

activity_ranked as (
    select
        *,
        row_number() over (
            partition by user_id, activity_date
            order by activity_at nulls last, is_session nulls last, marketplace nulls last,
                channel nulls last
        ) as activity_seq
    from activity
),

visitor_days as (
    select
        user_id,
        activity_date,
        min(activity_at) as index_at,
        max(is_session) = 1 as is_engaged,
        max(case when activity_seq = 1 then marketplace end) as marketplace,
        max(case when activity_seq = 1 then channel end) as channel
    from activity_ranked
    group by user_id, activity_date
),

orders as (
    select user_id, order_at, order_revenue_usd
    from int_orders
    where is_placed
        and order_date between $start_date
        and cast($end_date as date) + cast($max_window_days as integer)
),

outcomes as (
    select
        v.user_id,
        v.activity_date,
        v.is_engaged,
        v.marketplace,
        v.channel,
        w.window_days,
        max(case when o.order_at is null then 0 else 1 end) as converted,
        coalesce(sum(o.order_revenue_usd), 0) as revenue_usd
    from visitor_days as v
    cross join cfg_windows as w
    left join orders as o
        on o.user_id = v.user_id
        and o.order_at >= v.index_at
        and date_diff('microsecond', v.index_at, o.order_at)
            <= cast(w.window_days as bigint) * 86400000000
    where v.activity_date + w.window_days <= cast($data_end_date as date)
    group by v.user_id, v.activity_date, v.is_engaged, v.marketplace, v.channel, w.window_days
),

segmented as (
    select 'all' as segment, * from outcomes
    union all
    select 'marketplace=' || marketplace as segment, * from outcomes
    union all
    select 'channel=' || channel as segment, * from outcomes
),

counts as (
    select
        activity_date as period_start,
        segment,
        window_days,
        sum(case when is_engaged then 1 else 0 end) as n_engaged,
        sum(case when is_engaged then 0 else 1 end) as n_comparison,
        -- distinct users of each group (the privacy floor counts users, never visitor-days)
        count(distinct case when is_engaged then user_id end) as n_engaged_users,
        count(distinct case when is_engaged then null else user_id end) as n_comparison_users,
        sum(case when is_engaged then converted else 0 end) as conversions_engaged,
        sum(case when is_engaged then 0 else converted end) as conversions_comparison,
        sum(case when is_engaged then revenue_usd else 0 end) as revenue_engaged_usd,
        sum(case when is_engaged then 0 else revenue_usd end) as revenue_comparison_usd
    from segmented
    group by activity_date, segment, window_days
),

rates as (
    select
        *,
        cast(conversions_engaged as double) / nullif(n_engaged, 0) as cr_engaged,
        cast(conversions_comparison as double) / nullif(n_comparison, 0) as cr_comparison,
        sqrt(
            (1e0 - cast(conversions_engaged as double) / nullif(n_engaged, 0))
            / nullif(conversions_engaged, 0)
            + (1e0 - cast(conversions_comparison as double) / nullif(n_comparison, 0))
            / nullif(conversions_comparison, 0)
        ) as se_log_ratio,
        -- revenue per visitor-day, rounded half away from zero to 0.0001 USD in exact integer
        -- arithmetic, the same on DuckDB and Spark (a DOUBLE cast to DECIMAL is not: DuckDB
        -- rounds the binary value, Spark its shortest decimal spelling; docs/spark.md). With
        -- u = revenue in units of 0.0001 (exact: the sums are DECIMAL with 4 places) and n
        -- visitor-days, the rounded units are trunc((2u + sign(u) n) / 2n); `numerator -
        -- numerator % 2n` is a multiple of 2n, so dividing it as DOUBLE is exact (below 2^53:
        -- revenue under 4.5e11 USD per row). final scales the units by 0.0001 (DECIMAL).
        2 * cast(revenue_engaged_usd * 10000 as bigint)
            + case when revenue_engaged_usd < 0 then -n_engaged else n_engaged end
            as revenue_engaged_halves,
        2 * cast(revenue_comparison_usd * 10000 as bigint)
            + case when revenue_comparison_usd < 0 then -n_comparison else n_comparison end
            as revenue_comparison_halves
    from counts
),

final as (
    select
        period_start,
        period_start as period_end,
        'day' as period_grain,
        segment,
        'observed' as method,
        cast(null as varchar) as experiment_id,
        window_days,
        cast(n_engaged as bigint) as n_engaged,
        cast(n_comparison as bigint) as n_comparison,
        cast(conversions_engaged as bigint) as conversions_engaged,
        cast(conversions_comparison as bigint) as conversions_comparison,
        cr_engaged,
        cr_comparison,
        cast(cr_engaged as double) / nullif(cr_comparison, 0) - 1e0 as lift,
        exp(
            ln(nullif(cast(cr_engaged as double), 0) / nullif(cr_comparison, 0))
            - 1.959963984540054e0 * se_log_ratio
        ) - 1e0 as lift_ci_low,
        exp(
            ln(nullif(cast(cr_engaged as double), 0) / nullif(cr_comparison, 0))
            + 1.959963984540054e0 * se_log_ratio
        ) - 1e0 as lift_ci_high,
        cast(revenue_engaged_usd as decimal(18, 4)) as revenue_engaged_usd,
        cast(revenue_comparison_usd as decimal(18, 4)) as revenue_comparison_usd,
        cast(cast(
            cast(revenue_engaged_halves - revenue_engaged_halves % nullif(2 * n_engaged, 0)
                as double) / nullif(2 * n_engaged, 0) as bigint
        ) * 0.0001 as decimal(18, 4)) as revenue_per_user_engaged_usd,
        cast(cast(
            cast(revenue_comparison_halves
                - revenue_comparison_halves % nullif(2 * n_comparison, 0) as double)
            / nullif(2 * n_comparison, 0) as bigint
        ) * 0.0001 as decimal(18, 4)) as revenue_per_user_comparison_usd,
        cast(null as double) as srm_p_value,
        'delta_log_ratio' as ci_method,
        -- p-values (two-sided, same z as the interval) and their Benjamini-Hochberg adjustment
        -- are filled by the Python lift stage (attribution.lift), which also writes every
        -- other method, period and segment into this table
        cast(null as double) as p_value,
        cast(null as double) as p_value_bh,
        cast(n_engaged * (cr_engaged - cr_comparison) as double) as incremental_conversions,
        cast(n_engaged * (cast(revenue_engaged_usd as double) / nullif(n_engaged, 0)
            - cast(revenue_comparison_usd as double) / nullif(n_comparison, 0)) as double)
            as incremental_revenue_usd,
        cast(null as double) as incremental_revenue_ci_low,
        cast(null as double) as incremental_revenue_ci_high,
        cast(null as double) as revenue_lift,
        cast(null as double) as revenue_lift_ci_low,
        cast(null as double) as revenue_lift_ci_high,
        cast(null as double) as cuped_theta,
        cast(null as double) as lift_cuped,
        cast(null as double) as lift_cuped_ci_low,
        cast(null as double) as lift_cuped_ci_high,
        cast(null as boolean) as srm_flag,
        1 as n_days,
        -- last, so that an older table can be migrated with ALTER TABLE ... ADD COLUMN
        cast(n_engaged_users as bigint) as n_engaged_users,
        cast(n_comparison_users as bigint) as n_comparison_users
    from rates
)

select * from final
