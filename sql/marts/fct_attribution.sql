-- grain: one row per (order line x window x scope x eligible session) with every rule model's credit
-- materialized: incremental(order_date)
-- sliced_by: int_order_lines
-- order: 10
-- Eligible: the buyer's sessions with order_at - window_days <= session_start <= order_at (both
-- ends inclusive). Scope 'user': every eligible session; 'product': only sessions that surfaced the
-- line's product_id; 'brand' / 'category' (only when the optional products catalogue is loaded):
-- sessions that surfaced a product of the same brand / category as the line's product. Ties in
-- session_start are broken by session_id. Credits of a (line, window, scope) sum to 1 for every
-- model; attributed revenue of a model = credit * line_revenue_usd.
-- Input window = output window (orders placed in [start_date, end_date]) + lookback: sessions
-- from max_window_days before start_date; one pair join at the largest window serves all windows.
-- Method (nothing wide is sorted): the (line x session) pairs at the largest window get their
-- scope flags from one join to the sessions' products; each line's touches are sorted once, in
-- (session_start, session_id) order, into a short list. A scope keeps a subsequence of that list,
-- and a smaller window drops only the scope's oldest touches (a prefix), so every (line, window,
-- scope) partition is a suffix of its scope's sorted list: touch_rank is the position in the
-- suffix, n_touches its length, and the decay total a left fold over it in touch order (the order
-- in which the former ordered, whole-partition window sum added: same bits, on every rerun). The
-- suffixes are unnested and the payload of each row is joined back once, by (line, session).
with lines as (
    select
        l.*,
        p.brand as product_brand,
        p.category as product_category,
        -- a compact, deterministic line key: (order_id, line_no) is unique
        row_number() over (order by l.order_id nulls last, l.line_no nulls last) as line_key
    from int_order_lines as l
    left join stg_products as p on p.product_id = l.product_id
    where l.order_date between $start_date and $end_date
),

sessions as (
    select
        session_id, user_id, session_start, touch_type, channel, model_version,
        -- one integer in (session_start, session_id) order: the touch order, cheap to sort on
        row_number() over (
            order by session_start nulls last, session_id nulls last
        ) as session_order
    from assistant_sessions
    where session_date between cast($start_date as date) - cast($max_window_days as integer)
        and $end_date
),

pairs as (
    select
        l.line_key,
        l.order_id,
        l.line_no,
        l.order_at,
        l.order_date,
        l.user_id,
        l.marketplace,
        l.product_id,
        l.product_brand,
        l.product_category,
        l.line_status,
        l.line_amount_usd,
        l.line_revenue_usd,
        s.session_id,
        s.session_start,
        s.session_order,
        s.touch_type,
        s.channel,
        s.model_version,
        date_diff('microsecond', s.session_start, l.order_at) as age_us
    from lines as l
    inner join sessions as s
        on s.user_id = l.user_id
        and s.session_start <= l.order_at
        and date_diff('microsecond', s.session_start, l.order_at)
            <= cast($max_window_days as bigint) * 86400000000
),

-- one row per pair with its scope flags: did the session surface the line's product, or (from
-- sessions inside the input window) a product of the line's brand / category?
pair_scopes as (
    select
        pr.line_key,
        pr.session_order,
        min(pr.age_us) as age_us,  -- one value per pair
        coalesce(bool_or(sp.product_id = pr.product_id), false) as surfaced_product,
        coalesce(bool_or(
            c.brand = pr.product_brand
            and sp.session_date between cast($start_date as date)
                - cast($max_window_days as integer) and $end_date
        ), false) as surfaced_brand,
        coalesce(bool_or(
            c.category = pr.product_category
            and sp.session_date between cast($start_date as date)
                - cast($max_window_days as integer) and $end_date
        ), false) as surfaced_category
    from pairs as pr
    left join int_session_products as sp
        on sp.session_id = pr.session_id
        and sp.user_id = pr.user_id
    left join stg_products as c on c.product_id = sp.product_id
    group by pr.line_key, pr.session_order
),

-- a line's eligible touches, oldest first (session_order is unique: the sort never looks further)
line_touches as (
    select
        line_key,
        list_sort(
            list({
                'o': session_order, 'a': age_us,
                'p': surfaced_product, 'b': surfaced_brand, 'c': surfaced_category
            }),
            'ASC', 'NULLS LAST'
        ) as touches
    from pair_scopes
    group by line_key
),

scope_touches as (
    select
        t.line_key,
        s.scope_id,
        list_filter(
            t.touches,
            lambda x: case s.scope_id when 1 then true when 2 then x.p when 3 then x.b else x.c end
        ) as touches
    from line_touches as t
    cross join (values (1), (2), (3), (4)) as s (scope_id)
),

-- per (line, scope): touch order, ages and decay weights, oldest first; the last touch is the
-- youngest, which lies in every window that has a touch of that scope, so it is also each
-- (window, scope) partition's youngest: weights relative to it (weight 1) never all underflow,
-- and the normalised credits equal 2^(-age / half_life) / sum of the same
scope_lists as (
    select
        line_key,
        scope_id,
        array_length(touches) as n_scope,
        list_transform(touches, lambda x: x.o) as orders,
        list_transform(touches, lambda x: x.a) as ages,
        list_transform(
            touches,
            lambda x: power(
                2e0,
                -(cast(x.a - touches[array_length(touches)].a as double) / 86400e6)
                    / nullif($half_life_days, 0)
            )
        ) as weights
    from scope_touches
    where array_length(touches) > 0
),

-- per (line, window, scope): the window keeps the touches with age <= window, a suffix of the list
partitions as (
    select
        t.line_key,
        t.scope_id,
        w.window_days,
        t.n_scope,
        t.orders,
        t.weights,
        array_length(list_filter(
            t.ages, lambda a: a <= cast(w.window_days as bigint) * 86400000000
        )) as n_touches
    from scope_lists as t
    cross join cfg_windows as w
),

-- one row per touch of the partition's suffix: a single unnest of the positions (several unnest
-- in one SELECT are zipped on DuckDB but crossed on Spark), the other lists indexed by position
ranked_positions as (
    select
        line_key,
        scope_id,
        window_days,
        n_scope,
        n_touches,
        orders,
        weights,
        -- a left fold in touch order fixes the summation order: reruns are bit-identical
        -- (0 + the first weight is that weight exactly)
        list_reduce(
            array_slice(weights, n_scope - n_touches + 1, n_scope),
            lambda total, weight: total + weight,
            0e0
        ) as decay_total,
        unnest(range(1, n_touches + 1)) as touch_rank
    from partitions
    where n_touches > 0
),

ranked as (
    select
        line_key,
        scope_id,
        window_days,
        n_touches,
        decay_total,
        orders[n_scope - n_touches + touch_rank] as session_order,
        weights[n_scope - n_touches + touch_rank] as decay_weight,
        touch_rank
    from ranked_positions
),

final as (
    select
        x.order_id,
        x.line_no,
        x.order_at,
        x.order_date,
        x.user_id,
        x.marketplace,
        x.product_id,
        x.line_status,
        r.window_days,
        case r.scope_id when 1 then 'user' when 2 then 'product' when 3 then 'brand'
            else 'category' end as scope,
        x.session_id,
        x.session_start,
        x.touch_type,
        x.channel,
        x.model_version,
        x.age_us / 3.6e9 as session_age_hours,
        r.n_touches,
        r.touch_rank,
        x.line_amount_usd,
        x.line_revenue_usd,
        case when r.touch_rank = 1 then 1e0 else 0e0 end as first_touch,
        case when r.touch_rank = r.n_touches then 1e0 else 0e0 end as last_touch,
        1e0 / nullif(r.n_touches, 0) as linear,
        cast(r.decay_weight as double) / nullif(r.decay_total, 0) as time_decay,
        case
            when r.n_touches = 1 then 1e0
            when r.n_touches = 2 then 0.5e0
            when r.touch_rank = 1 or r.touch_rank = r.n_touches then 0.4e0
            else 0.2e0 / nullif(r.n_touches - 2, 0)
        end as position_based
    from ranked as r
    inner join pairs as x
        on x.line_key = r.line_key
        and x.session_order = r.session_order
)

select * from final
