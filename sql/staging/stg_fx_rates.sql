-- grain: one row per (date, currency) as delivered: units of USD per one unit of currency
-- materialized: view
select
    "date" as rate_date,
    currency,
    rate_to_usd
from raw_fx_rates
