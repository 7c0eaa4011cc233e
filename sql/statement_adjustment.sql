-- statement_adjustment: corrections to closed months (period close, pipelines/statements/closing.py).
-- `statement_line` holds what the final statements said: per month, recipient and currency, the
-- month's own figures (kind 'statement') and the adjustment lines each final statement carried
-- for earlier months (kind 'adjustment'). A closed month is stated as its statement plus every
-- adjustment carried for it since. When the ledger now says something else for a closed month (a
-- late signal, a backdated grant), the difference is a 'pending' adjustment of the first open
-- month (the month after the last final one); once that month is final its lines are 'final'.
-- No parameters: this is also the warehouse view `statement_adjustment`.
WITH stated AS (
    SELECT adjusted_month, customer_id, recipient_type, recipient_id, currency,
           sum(granted) AS granted, sum(spent) AS spent, sum(expired) AS expired
    FROM statement_line
    GROUP BY ALL
),
open_month AS (
    SELECT CAST(max(month) + INTERVAL 1 MONTH AS DATE) AS month FROM statement_line
),
ledger AS (
    SELECT CAST(date_trunc('month', date) AS DATE) AS adjusted_month,
           customer_id, recipient_type, recipient_id, currency,
           sum(granted) AS granted, sum(spent) AS spent, sum(expired) AS expired
    FROM balance_snapshot
    WHERE date < (SELECT month FROM open_month)
    GROUP BY ALL
),
pending AS (
    SELECT (SELECT month FROM open_month) AS month, adjusted_month,
           customer_id, recipient_type, recipient_id, currency,
           coalesce(l.granted, 0) - coalesce(s.granted, 0) AS granted,
           coalesce(l.spent, 0) - coalesce(s.spent, 0) AS spent,
           coalesce(l.expired, 0) - coalesce(s.expired, 0) AS expired
    FROM ledger AS l
    FULL JOIN stated AS s USING (adjusted_month, customer_id, recipient_type, recipient_id, currency)
),
lines AS (
    SELECT month, adjusted_month, customer_id, recipient_type, recipient_id, currency,
           granted, spent, expired, 'final' AS status
    FROM statement_line
    WHERE kind = 'adjustment'
    UNION ALL
    SELECT *, 'pending'
    FROM pending
    WHERE granted <> 0 OR spent <> 0 OR expired <> 0
)
SELECT month, adjusted_month, customer_id, recipient_type, recipient_id, currency,
       CAST(granted AS DECIMAL(38, 6)) AS granted,
       CAST(spent AS DECIMAL(38, 6)) AS spent,
       CAST(expired AS DECIMAL(38, 6)) AS expired,
       CAST(granted - spent - expired AS DECIMAL(38, 6)) AS net,
       status
FROM lines
ORDER BY month, customer_id, adjusted_month, currency, recipient_type, recipient_id
