-- tally_customer_day: Tally's priced signals (`fact_signal` of the published warehouse) summed per
-- customer and UTC day: what every peer must reproduce exactly. $last_id limits it to the signals
-- landed up to that signal_id (ids sort by landing sequence): the plain-Python peer's sample.
SELECT
    customer_id AS customer,
    CAST(CAST("timestamp" AS DATE) AS VARCHAR) AS day,
    count(*) AS signals,
    sum(credits) AS credits
FROM fact_signal
WHERE signal_id <= coalesce($last_id, signal_id)
GROUP BY ALL
