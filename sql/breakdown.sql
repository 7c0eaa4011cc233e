-- breakdown: signals, quantity and credits of fact_signal grouped by the requested keys (§7).
-- The key_terms placeholder holds one term per --by key, built by pipelines/lib/analytics.py from a
-- fixed vocabulary only: a built-in column, a hot_key_<n> column, or json_extract(data, $k<n>) with
-- the key's JSON pointer bound as a parameter. Keys and filters never become SQL text.
SELECT
    {key_terms},
    count(*) AS signals,
    sum(quantity) AS quantity,
    CAST(coalesce(sum(credits), 0) AS DECIMAL(38, 6)) AS credits
FROM fact_signal
WHERE ($from_ts IS NULL OR timestamp >= CAST($from_ts AS TIMESTAMPTZ))
  AND ($to_ts IS NULL OR timestamp < CAST($to_ts AS TIMESTAMPTZ))
  AND ($customer IS NULL OR customer_id = $customer)
  AND ($product IS NULL OR product_id = $product)
  AND ($event IS NULL OR event_name = $event)
GROUP BY ALL
ORDER BY credits DESC, signals DESC
