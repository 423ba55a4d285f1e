-- grain: one row per storefront visit (user_id, ts, marketplace, channel)
-- materialized: view
select
    user_id,
    ts as visit_at,
    cast(ts as date) as visit_date,
    marketplace,
    channel
from raw_visits
