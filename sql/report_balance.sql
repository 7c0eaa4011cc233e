-- report_balance: every pool and seat at the end of $as_of (the last ledger day) with its burn
-- rate (average credits spent per day over its last $burn_days ledger days) and the days its
-- available credits last at that rate; flags recipients in overage or nearing zero (fewer than
-- $near_days days left). For `tally report` (pipelines/statements/report.py).
WITH last_day AS (
    SELECT * FROM balance_snapshot WHERE date = $as_of
),
burn AS (
    SELECT customer_id, recipient_type, recipient_id, currency,
           CAST(sum(spent) / count(*) AS DECIMAL(38, 6)) AS burn_rate
    FROM balance_snapshot
    WHERE date > $as_of - CAST($burn_days AS INTEGER) AND date <= $as_of
    GROUP BY ALL
)
SELECT l.customer_id, c.name AS customer_name, l.recipient_type, l.recipient_id, l.currency,
       l.closing_balance, l.available, l.overage, b.burn_rate,
       CASE WHEN b.burn_rate > 0 THEN CAST(l.available / b.burn_rate AS DECIMAL(18, 1)) END
           AS days_left,
       l.overage > 0 AS in_overage,
       l.overage = 0 AND b.burn_rate > 0 AND l.available / b.burn_rate < $near_days
           AS nearing_zero
FROM last_day AS l
JOIN burn AS b USING (customer_id, recipient_type, recipient_id, currency)
LEFT JOIN dim_customer AS c USING (customer_id)
ORDER BY l.customer_id, l.currency, l.recipient_type, l.recipient_id
