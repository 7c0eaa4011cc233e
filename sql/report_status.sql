-- report_status: accepted signals with timestamps in [$from_day, $as_of] (UTC days) by pricing
-- status and currency (credits are never added across currencies; a signal that was not priced
-- has 0 credits and no currency unless a pricing rule applied).
SELECT status, currency, count(*) AS signals,
       CAST(coalesce(sum(credits), 0) AS DECIMAL(38, 6)) AS credits
FROM fact_signal
WHERE timestamp >= timezone('UTC', CAST($from_day AS TIMESTAMP))
  AND timestamp < timezone('UTC', CAST($as_of + 1 AS TIMESTAMP))
GROUP BY status, currency
ORDER BY status <> 'priced', signals DESC, currency NULLS LAST
