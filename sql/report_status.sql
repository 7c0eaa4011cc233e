-- report_status: accepted signals with timestamps in [$from_day, $as_of] by pricing status.
SELECT status, count(*) AS signals, CAST(coalesce(sum(credits), 0) AS DECIMAL(38, 6)) AS credits
FROM fact_signal
WHERE timestamp >= CAST($from_day AS TIMESTAMPTZ)
  AND timestamp < CAST($as_of + 1 AS TIMESTAMPTZ)
GROUP BY ALL
ORDER BY signals DESC
