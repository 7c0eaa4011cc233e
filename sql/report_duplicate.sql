-- report_duplicate: signals landed per UTC day of timestamp in [$from_day, $as_of], and how many
-- were later copies of an idempotency key already received (counted once, never charged).
SELECT CAST(timestamp AS DATE) AS day,
       count(*) AS landed,
       count(*) FILTER (WHERE is_duplicate) AS duplicates
FROM raw_signal
WHERE timestamp >= CAST($from_day AS TIMESTAMPTZ)
  AND timestamp < CAST($as_of + 1 AS TIMESTAMPTZ)
GROUP BY ALL
ORDER BY day
