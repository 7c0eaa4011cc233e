-- report_daily: credits consumed per UTC day and currency over [$from_day, $as_of], all recipients.
SELECT date, currency, CAST(sum(spent) AS DECIMAL(38, 6)) AS spent
FROM balance_snapshot
WHERE date >= $from_day AND date <= $as_of
GROUP BY ALL
ORDER BY currency, date
