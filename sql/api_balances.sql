-- api_balances: one customer's credit pools and their grants at the end of the last processed day,
-- for `GET customers/external/{id}/credits/balances` and `.../state` (tally serve). A grant is
-- available only while in force at that instant; pools without grants (overage only) still appear.
WITH last AS (
    SELECT max(date) AS day, max(date) + INTERVAL 1 DAY AS at_end FROM balance_snapshot
),
pools AS (
    SELECT b.recipient_type, b.recipient_id, b.currency, b.available, b.overage, b.closing_balance
    FROM balance_snapshot AS b, last
    WHERE b.date = last.day AND b.customer_id = $customer
),
grants AS (
    SELECT g.recipient_type, g.recipient_id, g.currency, g.grant_id, g.amount, g.used,
           g.remaining, g.starts_at, g.expires_at,
           CASE WHEN g.starts_at < last.at_end
                 AND (g.expires_at IS NULL OR g.expires_at > last.at_end)
                THEN g.remaining ELSE 0 END::DECIMAL(38, 6) AS grant_available
    FROM dim_credit_grant AS g, last
    WHERE g.customer_id = $customer AND g.starts_at < last.at_end
)
SELECT coalesce(p.recipient_type, g.recipient_type) AS recipient_type,
       coalesce(p.recipient_id, g.recipient_id) AS recipient_id,
       coalesce(p.currency, g.currency) AS currency,
       coalesce(p.overage, 0)::DECIMAL(38, 6) AS overage,
       g.grant_id, g.amount, g.used, g.remaining, g.grant_available, g.starts_at, g.expires_at,
       (SELECT day FROM last) AS as_of
FROM pools AS p
FULL OUTER JOIN grants AS g USING (recipient_type, recipient_id, currency)
ORDER BY recipient_type, recipient_id, currency, g.starts_at, g.grant_id
