-- report_rejected: signals rejected at landing since $from_day (by received_at), by reason; the
-- values quoted in a reason are elided so that one kind of problem is one row.
SELECT regexp_replace(reason, '''[^'']*''', '…', 'g') AS reason,
       count(*) AS signals,
       min(location) AS example
FROM rejected_signal
WHERE received_at >= timezone('UTC', CAST($from_day AS TIMESTAMP))
GROUP BY ALL
ORDER BY signals DESC, reason
