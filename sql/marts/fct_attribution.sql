-- grain: one row per (order line x window x scope x eligible session) with every rule model's credit
-- materialized: incremental(order_date)
-- order: 10
-- Eligible: the buyer's sessions with order_at - window_days <= session_start <= order_at (both
-- ends inclusive). Scope 'user': every eligible session; 'product': only sessions that surfaced the
-- line's product_id; 'brand' / 'category' (only when the optional products catalogue is loaded):
-- sessions that surfaced a product of the same brand / category as the line's product. Ties in session_start are broken by session_id. Credits of a (line, window,
-- scope) sum to 1 for every model; attributed revenue of a model = credit * line_revenue_usd.
-- Input window = output window (orders placed in [start_date, end_date]) + lookback: sessions
-- from max_window_days before start_date; one pair join at the largest window serves all windows.
with lines as (
    select
        l.*,
        p.brand as product_brand,
        p.category as product_category,
        -- a compact, deterministic partition key: (order_id, line_no) is unique
        row_number() over (order by l.order_id, l.line_no) as line_key
    from int_order_lines as l
    left join stg_products as p on p.product_id = l.product_id
    where l.order_date between $start_date and $end_date
),

session_brands as (
    select distinct sp.session_id, sp.user_id, p.brand
    from int_session_products as sp
    inner join stg_products as p on p.product_id = sp.product_id
    where sp.session_date between cast($start_date as date) - cast($max_window_days as integer)
        and $end_date
),

session_categories as (
    select distinct sp.session_id, sp.user_id, p.category
    from int_session_products as sp
    inner join stg_products as p on p.product_id = sp.product_id
    where sp.session_date between cast($start_date as date) - cast($max_window_days as integer)
        and $end_date
),

sessions as (
    select
        session_id, user_id, session_start, touch_type, channel, model_version,
        -- one integer in (session_start, session_id) order: the touch order, cheap to sort on
        row_number() over (order by session_start, session_id) as session_order
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
        l.line_status,
        l.line_amount_usd,
        l.line_revenue_usd,
        s.session_id,
        s.session_start,
        s.session_order,
        s.touch_type,
        s.channel,
        s.model_version,
        date_diff('microsecond', s.session_start, l.order_at) as age_us,
        sp.product_id is not null as surfaced_product,
        sb.brand is not null as surfaced_brand,
        sc.category is not null as surfaced_category
    from lines as l
    inner join sessions as s
        on s.user_id = l.user_id
        and s.session_start <= l.order_at
        and date_diff('microsecond', s.session_start, l.order_at)
            <= cast($max_window_days as bigint) * 86400000000
    left join int_session_products as sp
        on sp.session_id = s.session_id
        and sp.user_id = s.user_id
        and sp.product_id = l.product_id
    left join session_brands as sb
        on sb.session_id = s.session_id
        and sb.user_id = s.user_id
        and sb.brand = l.product_brand
    left join session_categories as sc
        on sc.session_id = s.session_id
        and sc.user_id = s.user_id
        and sc.category = l.product_category
),

-- the youngest eligible touch of a line in each scope: it lies in every window that has a touch
-- of that scope (its age is the smallest), so it is also each (window, scope) partition's youngest
youngest as (
    select
        line_key,
        min(age_us) as user_age_us,
        min(age_us) filter (where surfaced_product) as product_age_us,
        min(age_us) filter (where surfaced_brand) as brand_age_us,
        min(age_us) filter (where surfaced_category) as category_age_us
    from pairs
    group by line_key
),

windowed as (
    select
        p.*,
        y.user_age_us,
        y.product_age_us,
        y.brand_age_us,
        y.category_age_us,
        w.window_days
    from pairs as p
    inner join youngest as y on y.line_key = p.line_key
    inner join cfg_windows as w
        on p.age_us <= cast(w.window_days as bigint) * 86400000000
),

scoped as (
    select *, 1 as scope_id, user_age_us as youngest_age_us from windowed
    union all
    select *, 2 as scope_id, product_age_us from windowed where surfaced_product
    union all
    select *, 3 as scope_id, brand_age_us from windowed where surfaced_brand
    union all
    select *, 4 as scope_id, category_age_us from windowed where surfaced_category
),

weighted as (
    select
        *,
        -- relative to the line's youngest touch (weight 1), so that weights never all underflow;
        -- the normalised credits equal 2^(-age / half_life) / sum of the same
        power(
            2e0, -(cast(age_us - youngest_age_us as double) / 86400e6) / $half_life_days
        ) as decay_weight
    from scoped
),

-- one window operator (one sort) computes every per-partition figure
ranked as (
    select
        *,
        count(*) over touches as n_touches,
        row_number() over touches as touch_rank,
        -- an ordered, whole-partition frame fixes the summation order: reruns are bit-identical
        sum(decay_weight) over touches as decay_total
    from weighted
    window touches as (
        partition by line_key, window_days, scope_id
        order by session_order
        rows between unbounded preceding and unbounded following
    )
),

final as (
    select
        order_id,
        line_no,
        order_at,
        order_date,
        user_id,
        marketplace,
        product_id,
        line_status,
        window_days,
        case scope_id when 1 then 'user' when 2 then 'product' when 3 then 'brand'
            else 'category' end as scope,
        session_id,
        session_start,
        touch_type,
        channel,
        model_version,
        age_us / 3.6e9 as session_age_hours,
        n_touches,
        touch_rank,
        line_amount_usd,
        line_revenue_usd,
        case when touch_rank = 1 then 1e0 else 0e0 end as first_touch,
        case when touch_rank = n_touches then 1e0 else 0e0 end as last_touch,
        1e0 / n_touches as linear,
        decay_weight / decay_total as time_decay,
        case
            when n_touches = 1 then 1e0
            when n_touches = 2 then 0.5e0
            when touch_rank = 1 or touch_rank = n_touches then 0.4e0
            else 0.2e0 / (n_touches - 2)
        end as position_based
    from ranked
)

select * from final
