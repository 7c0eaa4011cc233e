-- statement_expiration: credits forfeited in the month when grants expired (their `expire`
-- transactions, as positive amounts). Parameters as in statement_balance.sql.
SELECT customer_id, grant_id, recipient_type, recipient_id, currency,
       -amount AS amount, occurred_at AS expired_at
FROM fact_credit_transaction
WHERE type = 'expire'
  AND occurred_at >= timezone('UTC', CAST($month_start AS TIMESTAMP))
  AND occurred_at < timezone('UTC', CAST($month_end AS TIMESTAMP))
  AND ($customer IS NULL OR customer_id = $customer)
ORDER BY customer_id, occurred_at, grant_id
