-- grant_balance_fingerprint: per day, a digest of every started grant's used, expired and
-- remaining credits at the day's end. $files: the days' grant_balance files.
SELECT date,
       md5(string_agg(concat_ws('|', grant_id, used, expired, remaining), ';' ORDER BY grant_id))
           AS digest
FROM read_parquet($files)
GROUP BY date
