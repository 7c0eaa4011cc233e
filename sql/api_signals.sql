-- api_signals: landed signals newest first (by landing sequence), for `GET signals/` and
-- `GET signals/{id}` (tally serve). $files is the lake's live file list (a consistent snapshot);
-- a signal briefly in two files during compaction is listed once. Tally's customer and product
-- ids are the external ids, so either form of a filter matches either form of a reference.
WITH s AS (
    SELECT seq, signal_id, event_name, received_at, customer_id, external_customer_id,
           product_id, external_product_id, data, idempotency_key, is_duplicate
    FROM read_parquet($files, hive_partitioning = false)
    WHERE ($seq IS NULL OR seq = $seq)
      AND ($name IS NULL OR event_name = $name)
      AND ($customer_id IS NULL OR coalesce(customer_id, external_customer_id) = $customer_id)
      AND ($external_customer_id IS NULL
           OR coalesce(customer_id, external_customer_id) = $external_customer_id)
      AND ($product_id IS NULL OR coalesce(product_id, external_product_id) = $product_id)
      AND ($external_product_id IS NULL
           OR coalesce(product_id, external_product_id) = $external_product_id)
      AND ($from_ts IS NULL OR received_at >= $from_ts)
      AND ($to_ts IS NULL OR received_at < $to_ts)
    QUALIFY row_number() OVER (PARTITION BY seq) = 1
)
SELECT *, count(*) OVER () AS total
FROM s
ORDER BY seq DESC
LIMIT $limit OFFSET $offset
