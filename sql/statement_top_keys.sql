-- statement_top_keys: the top $top values of every hot breakdown key (dim_hot_key) by credits,
-- per customer and currency (input: `month_signal`). `value` is JSON text; NULL is a missing key.
WITH unpivoted AS (
    SELECT customer_id, currency, hot_key, value, signals, credits
    FROM (SELECT customer_id, currency, signals, credits, COLUMNS('^hot_key_[0-9]+$')
          FROM month_signal)
    UNPIVOT INCLUDE NULLS (value FOR hot_key IN (COLUMNS('^hot_key_[0-9]+$')))
),
summed AS (
    SELECT customer_id, currency, hot_key, CAST(value AS VARCHAR) AS value,
           CAST(sum(signals) AS BIGINT) AS signals,
           CAST(sum(credits) AS DECIMAL(38, 6)) AS credits
    FROM unpivoted
    GROUP BY ALL
)
SELECT s.customer_id, s.currency, k.position, k.path AS key, s.value, s.signals, s.credits
FROM summed AS s
JOIN dim_hot_key AS k ON k.position = CAST(regexp_extract(s.hot_key, '[0-9]+$') AS INTEGER)
QUALIFY row_number() OVER (
    PARTITION BY s.customer_id, s.currency, k.position
    ORDER BY s.credits DESC, s.signals DESC, s.value NULLS LAST
) <= $top
ORDER BY s.customer_id, s.currency, k.position, s.credits DESC, s.signals DESC, s.value NULLS LAST
