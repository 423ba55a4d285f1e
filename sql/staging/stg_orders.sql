-- grain: one row per order line (order_id, line_no) in its latest state: the version with the latest updated_at
-- materialized: view
with ranked as (
    select
        *,
        row_number() over (
            partition by order_id, line_no
            order by updated_at desc nulls last, _loaded_at desc nulls last, _file desc nulls last,
                _row desc nulls last
        ) as version_rank,
        count(*) over (partition by order_id, line_no) as n_versions
    from raw_orders
),

final as (
    select
        order_id,
        line_no,
        user_id,
        ts as order_at,
        cast(ts as date) as order_date,
        marketplace,
        product_id,
        quantity,
        amount,
        currency,
        coalesce(status, 'placed') as line_status,
        updated_at,
        n_versions
    from ranked
    where version_rank = 1
)

select * from final
