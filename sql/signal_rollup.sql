-- signal_rollup: one day's fact_signal summed by every dimension that a fast breakdown can ask
-- for: the built-in dimensions (currency and status included: figures are never added across
-- currencies) and the hot keys (their hot_key_<n> columns, listed in place of the
-- hot_key_columns placeholder by pipelines/pricing/price.py; integers only). A breakdown whose keys
-- and filters are all among these reads this small table instead of every signal.
-- `day` is the UTC day of `timestamp`, whatever the session's TimeZone.
-- Input: view `fact` (the day's fact_signal file).
SELECT
    CAST(timezone('UTC', timestamp) AS DATE) AS day,
    customer_id,
    product_id,
    event_name,
    user_id,
    CASE WHEN recipient_type = 'seat' THEN recipient_id END AS seat_id,
    currency,
    status,
    recipient_type,
    recipient_id{hot_key_columns},
    count(*) AS signals,
    sum(quantity) AS quantity,
    sum(credits) AS credits
FROM fact
GROUP BY ALL
