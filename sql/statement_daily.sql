-- statement_daily: the month's ledger days per recipient, for the daily consumption and the
-- burn-down charts of a statement. Parameters as in statement_balance.sql.
SELECT date, customer_id, recipient_type, recipient_id, currency,
       granted, spent, expired, closing_balance, overage
FROM balance_snapshot
WHERE date >= $month_start AND date < $month_end
  AND ($customer IS NULL OR customer_id = $customer)
ORDER BY customer_id, currency, recipient_type, recipient_id, date
