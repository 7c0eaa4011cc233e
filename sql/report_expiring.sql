-- report_expiring: grants with credits left at the end of $as_of that expire within the next
-- $horizon days (what customers will forfeit unless they use it).
SELECT g.customer_id, g.grant_id, g.recipient_type, g.recipient_id, g.currency, g.expires_at,
       b.remaining,
       CAST(date_diff('hour', timezone('UTC', CAST($as_of + 1 AS TIMESTAMP)), g.expires_at) / 24.0
            AS DECIMAL(18, 1)) AS days_left
FROM internal.credit_grant_config AS g
JOIN grant_balance AS b ON b.grant_id = g.grant_id AND b.date = $as_of
WHERE b.remaining > 0
  AND g.expires_at >= timezone('UTC', CAST($as_of + 1 AS TIMESTAMP))
  AND g.expires_at < timezone('UTC', CAST($as_of + 1 + CAST($horizon AS INTEGER) AS TIMESTAMP))
ORDER BY g.expires_at, g.customer_id, g.grant_id
