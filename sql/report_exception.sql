-- report_exception: signals in [$from_day, $as_of] that were not charged, by status and what
-- caused it: unknown customers and products (their ids), unattributed signals, unpriced events
-- (no rule in force) and invalid quantities (with an example value); the $top largest per status.
SELECT status, customer_id, product_id, event_name,
       count(*) AS signals,
       min(invalid_quantity) AS example_quantity,
       min(timestamp) AS first_seen,
       max(timestamp) AS last_seen
FROM fact_signal
WHERE status <> 'priced'
  AND timestamp >= timezone('UTC', CAST($from_day AS TIMESTAMP))
  AND timestamp < timezone('UTC', CAST($as_of + 1 AS TIMESTAMP))
GROUP BY status, customer_id, product_id, event_name
QUALIFY row_number() OVER (PARTITION BY status ORDER BY signals DESC, customer_id, product_id,
                                                       event_name) <= $top
ORDER BY status, signals DESC, customer_id, product_id, event_name
