-- grain: one row per assistant session (a touch); its time is its first interaction (session_start)
-- materialized: incremental(session_date)
-- sliced_by: int_interaction_sessions, 4000000 rows
-- order: 30
-- touch_type is the deepest event type of the session:
-- help_me_decide > comparison > product_question > product_click > review_summary > query.
with events as (
    select
        *,
        case event_type
            when 'help_me_decide' then 1
            when 'comparison' then 2
            when 'product_question' then 3
            when 'product_click' then 4
            when 'review_summary' then 5
            else 6
        end as event_depth
    from int_interaction_sessions
    where session_date between $start_date and $end_date
),

final as (
    select
        session_id,
        user_id,
        min(session_start) as session_start,
        max(event_at) as session_end,
        min(session_date) as session_date,
        count(*) as n_events,
        max(case when event_seq = 1 then marketplace end) as marketplace,
        max(case when event_seq = 1 then channel end) as channel,
        coalesce(
            max(case when event_seq = 1 then model_version end), max(model_version)
        ) as model_version,
        case min(event_depth)
            when 1 then 'help_me_decide'
            when 2 then 'comparison'
            when 3 then 'product_question'
            when 4 then 'product_click'
            when 5 then 'review_summary'
            else 'query'
        end as touch_type,
        max(case when event_type = 'help_me_decide' then 1 else 0 end) = 1
            as used_help_me_decide,
        max(session_source) as session_source
    from events
    group by session_id, user_id
)

select * from final
