-- ledger_day_lowest: per day, the five recipients with the lowest closing balance.
-- $files: the days' balance_snapshot files.
SELECT date, recipient_type, recipient_id, currency, closing_balance, overage
FROM read_parquet($files)
QUALIFY row_number() OVER (PARTITION BY date ORDER BY closing_balance, recipient_id) <= 5
ORDER BY date, closing_balance, recipient_id
