-- breakdown: signals, quantity and credits of the priced signals grouped by the requested keys
-- and currency (figures are never added across currencies). The key_terms placeholder holds
-- one term per --by key plus `currency`, built by pipelines/warehouse/analytics.py from a fixed
-- vocabulary only: a built-in column, a hot_key_<n> column, or json_extract(data, $k<n>) with the
-- key's JSON pointer bound as a parameter. Keys and filters never become SQL text. --from and
-- --to are UTC days, whatever the session's TimeZone.
SELECT
    {key_terms},
    count(*) AS signals,
    sum(quantity) AS quantity,
    CAST(coalesce(sum(credits), 0) AS DECIMAL(38, 6)) AS credits
FROM internal.priced_signal
WHERE ($from_ts IS NULL OR timestamp >= timezone('UTC', CAST($from_ts AS TIMESTAMP)))
  AND ($to_ts IS NULL OR timestamp < timezone('UTC', CAST($to_ts AS TIMESTAMP)))
  AND ($customer IS NULL OR customer_id = $customer)
  AND ($product IS NULL OR product_id = $product)
  AND ($event IS NULL OR event_name = $event)
  AND ($status IS NULL OR status = $status)
GROUP BY ALL
ORDER BY "currency" NULLS LAST, credits DESC, signals DESC
