-- api_pending: a customer's pools with outstanding overage after the last processed day (credits
-- consumed that no grant could fund yet), oldest first, with the day the overage began.
WITH b AS (
    SELECT * FROM balance_snapshot WHERE customer_id = $customer
),
last AS (SELECT max(date) AS day FROM balance_snapshot),
cleared AS (
    SELECT recipient_type, recipient_id, currency, max(date) AS day
    FROM b WHERE overage = 0 GROUP BY ALL
)
SELECT b.recipient_type, b.recipient_id, b.currency, b.overage, last.day AS as_of,
       (SELECT min(o.date) FROM b AS o
        WHERE (o.recipient_type, o.recipient_id, o.currency)
              = (b.recipient_type, b.recipient_id, b.currency)
          AND o.date > coalesce(c.day, DATE '0001-01-01')) AS since
FROM b
JOIN last ON b.date = last.day
LEFT JOIN cleared AS c USING (recipient_type, recipient_id, currency)
WHERE b.overage > 0
ORDER BY since, b.recipient_type, b.recipient_id, b.currency
