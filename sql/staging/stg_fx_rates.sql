-- grain: one row per (date, currency): the latest delivery of its rate, in units of USD per one unit of currency
-- materialized: view
-- A later delivery of another rate for the same (date, currency) corrects the earlier one (ingest
-- loads it beside the earlier; docs/ingest.md): the latest delivery wins, in load order (later run,
-- then later file path, then later row), the order ingest compares corrections against.
with ranked as (
    select
        "date" as rate_date,
        currency,
        rate_to_usd,
        row_number() over (
            partition by "date", currency
            order by
                _loaded_at desc nulls last,
                _file desc nulls last,
                _row desc nulls last,
                _run_id desc nulls last
        ) as delivery_rank
    from raw_fx_rates
),

final as (
    select
        rate_date,
        currency,
        rate_to_usd
    from ranked
    where delivery_rank = 1
)

select * from final
