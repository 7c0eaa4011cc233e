-- breakdown_rollup: the breakdown of sql/breakdown.sql answered from the signal_rollup parts, for
-- keys that are all built-in dimensions or hot keys (same key_terms placeholder and parameters;
-- the day filters compare whole UTC days, as --from and --to are days).
SELECT
    {key_terms},
    CAST(sum(signals) AS BIGINT) AS signals,
    sum(quantity) AS quantity,
    CAST(coalesce(sum(credits), 0) AS DECIMAL(38, 6)) AS credits
FROM internal.signal_rollup_part  -- the parts: summing them is the same as summing the groups
WHERE ($from_ts IS NULL OR day >= CAST($from_ts AS DATE))
  AND ($to_ts IS NULL OR day < CAST($to_ts AS DATE))
  AND ($customer IS NULL OR customer_id = $customer)
  AND ($product IS NULL OR product_id = $product)
  AND ($event IS NULL OR event_name = $event)
  AND ($status IS NULL OR status = $status)
GROUP BY ALL
ORDER BY "currency" NULLS LAST, credits DESC, signals DESC
