-- grain: one row per assistant interaction event (event_id unique; duplicates skipped at ingest)
-- materialized: view
select
    event_id,
    user_id,
    ts as event_at,
    cast(ts as date) as event_date,
    nullif(trim(session_id), '') as given_session_id,
    marketplace,
    channel,
    event_type,
    product_ids,
    model_version
from raw_interactions
