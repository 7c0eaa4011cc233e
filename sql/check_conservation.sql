-- check_conservation: rows that break the ledger's conservation laws (zero rows = pass).
-- Inputs: views `balance` (balance_snapshot of every processed day), `grant_state` (grant_balance
-- of the last processed day) and the table `dim_credit_grant`.
WITH totals AS (
    SELECT customer_id, recipient_type, recipient_id, currency,
           sum(granted) AS granted, sum(spent) AS spent, sum(expired) AS expired,
           arg_max(available, date) AS available, arg_max(overage, date) AS overage,
           arg_max(closing_balance, date) AS closing
    FROM balance
    GROUP BY ALL
)
SELECT 'day' AS scope, recipient_type, recipient_id, currency, date::VARCHAR AS at,
       'closing <> opening + granted - spent - expired, or closing <> available - overage' AS problem
FROM balance
WHERE closing_balance <> opening_balance + granted - spent - expired
   OR closing_balance <> available - overage
UNION ALL
-- granted = spent_funded + expired + remaining, with spent_funded = spent - outstanding overage
SELECT 'recipient', recipient_type, recipient_id, currency, NULL,
       'granted <> (spent - overage) + expired + remaining'
FROM totals
WHERE granted <> (spent - overage) + expired + available OR closing <> available - overage
UNION ALL
SELECT 'grant', g.recipient_type, g.recipient_id, g.currency, s.grant_id,
       'amount <> used + expired + remaining'
FROM grant_state AS s
JOIN dim_credit_grant AS g USING (grant_id)
WHERE g.amount <> s.used + s.expired + s.remaining
