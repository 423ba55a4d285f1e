-- grain: one row per interaction event, with the assistant session it belongs to
-- materialized: incremental(session_date)
-- sliced_by: stg_interactions(event_date), 4000000 rows
-- order: 20
-- Session rule: the given session_id where present; otherwise a user's consecutive events at most
-- $session_timeout_minutes apart (exactly the timeout is still the same session). Ties in ts are
-- broken by event_id. The rule-based session id is 's-' || the session's first event_id.
-- Input window = output window [start_date, end_date] plus one day on each side, so that a session
-- crossing midnight is seen whole; only sessions starting inside the output window are kept.
-- (A chain of events lasting more than 24 hours could be cut differently by a windowed run, or at
-- a slice boundary of a sliced build: 4M events per slice bound the window functions' memory.)
with events as (
    select *
    from stg_interactions
    where event_at >= cast($start_date as timestamp) - interval 1 day
        and event_at < cast($end_date as timestamp) + interval 2 day
),

rule_events as (
    select
        *,
        lag(event_at) over (
            partition by user_id order by event_at nulls last, event_id nulls last
        ) as previous_event_at
    from events
    where given_session_id is null
),

rule_starts as (
    select
        *,
        case
            when previous_event_at is null then 1
            when date_diff('microsecond', previous_event_at, event_at)
                > $session_timeout_minutes * 60000000 then 1
            else 0
        end as is_session_start
    from rule_events
),

rule_numbered as (
    select
        *,
        sum(is_session_start) over (
            partition by user_id order by event_at nulls last, event_id nulls last
            rows between unbounded preceding and current row
        ) as session_seq
    from rule_starts
),

rule_sessions as (
    select
        event_id,
        user_id,
        event_at,
        marketplace,
        channel,
        event_type,
        product_ids,
        model_version,
        'rule' as session_source,
        's-' || first_value(event_id) over (
            partition by user_id, session_seq order by event_at nulls last, event_id nulls last
        ) as session_id
    from rule_numbered
),

given_sessions as (
    select
        event_id,
        user_id,
        event_at,
        marketplace,
        channel,
        event_type,
        product_ids,
        model_version,
        'given' as session_source,
        given_session_id as session_id
    from events
    where given_session_id is not null
),

all_events as (
    select * from rule_sessions
    union all
    select * from given_sessions
),

with_start as (
    select
        *,
        min(event_at) over (partition by user_id, session_id) as session_start,
        row_number() over (
            partition by user_id, session_id order by event_at nulls last, event_id nulls last
        ) as event_seq
    from all_events
),

final as (
    select
        event_id,
        session_id,
        user_id,
        event_at,
        event_seq,
        session_start,
        cast(session_start as date) as session_date,
        marketplace,
        channel,
        event_type,
        product_ids,
        model_version,
        session_source
    from with_start
    where cast(session_start as date) between $start_date and $end_date
)

select * from final
