-- statement_signal: the month's priced signals summed by every dimension a statement shows
-- (product, event, user, recipient, currency and the hot_key_<n> columns); the statement's
-- breakdowns are read from this small table (`month_signal`), so fact_signal is scanned once.
-- Only the month's fact_signal files are read: the timestamp filter prunes the others by their
-- statistics. Parameters as in statement_balance.sql.
SELECT customer_id, product_id, event_name, user_id, recipient_type, recipient_id, currency,
       COLUMNS('^hot_key_[0-9]+$'),
       count(*) AS signals,
       sum(quantity) AS quantity,
       sum(credits) AS credits
FROM internal.priced_signal
WHERE status = 'priced'
  AND timestamp >= timezone('UTC', CAST($month_start AS TIMESTAMP))
  AND timestamp < timezone('UTC', CAST($month_end AS TIMESTAMP))
  AND ($customer IS NULL OR customer_id = $customer)
GROUP BY ALL
