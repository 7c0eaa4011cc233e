-- statement_grant: the grants that started in the month (their `grant` transactions), with the
-- grant's terms. Parameters as in statement_balance.sql.
SELECT t.customer_id, t.grant_id, t.recipient_type, t.recipient_id, t.currency, t.amount,
       t.occurred_at AS starts_at, g.expires_at, g.priority, g.origin
FROM fact_credit_transaction AS t
LEFT JOIN internal.credit_grant_config AS g USING (grant_id)
WHERE t.type = 'grant'
  AND t.occurred_at >= timezone('UTC', CAST($month_start AS TIMESTAMP))
  AND t.occurred_at < timezone('UTC', CAST($month_end AS TIMESTAMP))
  AND ($customer IS NULL OR t.customer_id = $customer)
ORDER BY t.customer_id, t.occurred_at, t.grant_id
