-- statement_balance: each recipient's month in one row (statements, pipelines/statements/statement.py):
-- the opening balance (the closing balance of the last ledger day before the month, 0 before the
-- recipient's first day), the month's granted, spent and expired, and the closing balance,
-- available credits and overage of the last ledger day up to the month's end. A recipient whose
-- ledger days all lie before the month carries its balance through the month unchanged.
-- Parameters: $month_start, $month_end (exclusive) DATEs; $customer (NULL: every customer).
WITH until_end AS (
    SELECT *
    FROM balance_snapshot
    WHERE date < $month_end
      AND ($customer IS NULL OR customer_id = $customer)
),
recipient_month AS (
    SELECT customer_id, recipient_type, recipient_id, currency,
           sum(granted) AS granted, sum(spent) AS spent, sum(expired) AS expired
    FROM until_end
    WHERE date >= $month_start
    GROUP BY ALL
),
before_month AS (
    SELECT customer_id, recipient_type, recipient_id, currency, closing_balance AS opening_balance
    FROM until_end
    WHERE date < $month_start
    QUALIFY row_number() OVER (
        PARTITION BY customer_id, recipient_type, recipient_id, currency ORDER BY date DESC
    ) = 1
),
last_day AS (  -- the balance at the end of the month's last ledger day (balance_end_of_day.sql)
    SELECT customer_id, recipient_type, recipient_id, currency,
           closing_balance, available, overage
    FROM balances_as_of(
        least(CAST($month_end AS DATE) - 1, (SELECT max(date) FROM balance_snapshot))
    )
    WHERE $customer IS NULL OR customer_id = $customer
)
SELECT customer_id, recipient_type, recipient_id, currency,
       CAST(coalesce(b.opening_balance, 0) AS DECIMAL(38, 6)) AS opening_balance,
       CAST(coalesce(m.granted, 0) AS DECIMAL(38, 6)) AS granted,
       CAST(coalesce(m.spent, 0) AS DECIMAL(38, 6)) AS spent,
       CAST(coalesce(m.expired, 0) AS DECIMAL(38, 6)) AS expired,
       l.closing_balance, l.available, l.overage
FROM last_day AS l
LEFT JOIN before_month AS b USING (customer_id, recipient_type, recipient_id, currency)
LEFT JOIN recipient_month AS m USING (customer_id, recipient_type, recipient_id, currency)
ORDER BY customer_id, currency, recipient_type, recipient_id
