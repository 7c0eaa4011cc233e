-- balance_snapshot_fingerprint: per day, a digest of every recipient's closing state (what the
-- next day's ledger starts from). $files: the days' balance_snapshot files.
SELECT date,
       md5(string_agg(concat_ws('|', customer_id, recipient_type, recipient_id, currency,
                                closing_balance, overage), ';'
                      ORDER BY customer_id, recipient_type, recipient_id, currency)) AS digest
FROM read_parquet($files)
GROUP BY date
