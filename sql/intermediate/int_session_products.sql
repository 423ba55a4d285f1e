-- grain: one row per (session, product surfaced or discussed in it)
-- materialized: incremental(session_date)
-- sliced_by: int_interaction_sessions, 4000000 rows
-- order: 40
with surfaced as (
    select
        session_id,
        user_id,
        session_start,
        session_date,
        unnest(product_ids) as product_id
    from int_interaction_sessions
    where session_date between $start_date and $end_date
        and product_ids is not null
),

final as (
    select distinct
        session_id,
        user_id,
        session_start,
        session_date,
        product_id
    from surfaced
    where product_id is not null and product_id <> ''
)

select * from final
