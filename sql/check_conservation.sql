-- check_conservation: rows that break the ledger's conservation laws (zero rows = pass).
-- Inputs: views `balance` (balance_snapshot of every day through the checked one), `grant_state`
-- (grant_balance of the checked day) and the table `dim_credit_grant`. A recipient's first opening
-- balance carries the grants that started before the first billed day.
WITH totals AS (
    SELECT customer_id, recipient_type, recipient_id, currency,
           arg_min(opening_balance, date) AS opening, sum(granted) AS granted,
           sum(spent) AS spent, sum(expired) AS expired,
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
-- opening + granted = spent_funded + expired + remaining, spent_funded = spent - outstanding overage
SELECT 'recipient', recipient_type, recipient_id, currency, NULL,
       'opening + granted <> (spent - overage) + expired + remaining'
FROM totals
WHERE opening + granted <> (spent - overage) + expired + available OR closing <> available - overage
UNION ALL
SELECT 'grant', g.recipient_type, g.recipient_id, g.currency, s.grant_id,
       'amount <> used + expired + remaining'
FROM grant_state AS s
JOIN dim_credit_grant AS g USING (grant_id)
WHERE g.amount <> s.used + s.expired + s.remaining
