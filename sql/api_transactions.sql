-- api_transactions: credit transactions newest first, for `GET credits/transactions` (tally serve).
-- Spends carry their signal's event and product. Filters are bound parameters (NULL = any).
WITH t AS (
    SELECT t.*, s.event_name, s.product_id, p.name AS product_name, g.origin
    FROM fact_credit_transaction AS t
    LEFT JOIN fact_signal AS s USING (signal_id)
    LEFT JOIN dim_product AS p ON p.product_id = s.product_id
    LEFT JOIN internal.credit_grant_config AS g ON g.grant_id = t.grant_id
    WHERE ($customer IS NULL OR t.customer_id = $customer)
      AND ($currency IS NULL OR t.currency = $currency)
      AND ($type IS NULL OR t.type = $type)
      AND ($from_ts IS NULL OR t.occurred_at >= $from_ts)
      AND ($to_ts IS NULL OR t.occurred_at < $to_ts)
)
SELECT *, count(*) OVER () AS total
FROM t
ORDER BY occurred_at DESC, type, coalesce(signal_id, grant_id) DESC
LIMIT $limit OFFSET $offset
