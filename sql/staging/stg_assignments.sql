-- grain: one row per (user_id, experiment_id): the user's experiment arm and when it was assigned
-- materialized: view
select
    user_id,
    experiment_id,
    arm,
    assigned_at
from raw_assignments
