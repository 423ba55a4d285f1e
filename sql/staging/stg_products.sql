-- grain: one row per product_id in the optional catalogue
-- materialized: view
select
    product_id,
    brand,
    category
from raw_products
