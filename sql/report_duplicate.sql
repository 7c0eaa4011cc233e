-- report_duplicate: signals landed per UTC day of timestamp in [$from_day, $as_of], and how many
-- were later copies of an idempotency key already received (counted once, never charged).
SELECT CAST(timezone('UTC', timestamp) AS DATE) AS day,
       count(*) AS landed,
       count(*) FILTER (WHERE is_duplicate) AS duplicates
FROM raw_signal
WHERE timestamp >= timezone('UTC', CAST($from_day AS TIMESTAMP))
  AND timestamp < timezone('UTC', CAST($as_of + 1 AS TIMESTAMP))
GROUP BY ALL
ORDER BY day
