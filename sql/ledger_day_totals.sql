-- ledger_day_totals: per day and currency, the balance rows, closing balances and overage
-- (the metadata of each balance_snapshot partition). $files: the days' balance_snapshot files.
SELECT date, currency, count(*) AS rows, sum(closing_balance) AS closing, sum(overage) AS overage
FROM read_parquet($files)
GROUP BY ALL
ORDER BY date, currency
