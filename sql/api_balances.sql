-- api_balances: one customer's credit pools and their grants at the end of the last processed day,
-- for `GET customers/external/{id}/credits/balances` and `.../state` (tally serve), by the one
-- definition of a balance at the end of a day (sql/balance_end_of_day.sql): one row per grant in
-- force then, or per pool without any (overage only).
WITH pools AS (
    SELECT date, recipient_type, recipient_id, currency, available, overage
    FROM balances_as_of(NULL)
    WHERE customer_id = $customer
),
grants AS (
    SELECT date, recipient_type, recipient_id, currency, grant_id, amount, used, remaining,
           starts_at, expires_at
    FROM grant_balances_as_of(NULL)
    WHERE customer_id = $customer
)
SELECT coalesce(p.recipient_type, g.recipient_type) AS recipient_type,
       coalesce(p.recipient_id, g.recipient_id) AS recipient_id,
       coalesce(p.currency, g.currency) AS currency,
       coalesce(p.overage, 0)::DECIMAL(38, 6) AS overage,
       coalesce(p.available, 0)::DECIMAL(38, 6) AS pool_available,
       g.grant_id, g.amount, g.used, g.remaining, g.remaining AS grant_available,
       g.starts_at, g.expires_at,
       coalesce(p.date, g.date) AS as_of
FROM pools AS p
FULL OUTER JOIN grants AS g USING (recipient_type, recipient_id, currency)
ORDER BY recipient_type, recipient_id, currency, g.starts_at, g.grant_id
