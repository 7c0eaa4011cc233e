-- check_signal_status: every accepted, non-duplicate signal of the checked days appears in
-- fact_signal exactly once, with exactly one known status (zero rows = pass).
-- Inputs: views `landed` (lake files of the days) and `fact` (fact_signal of the same days).
-- Signals are matched on their landing sequence number (the integer behind signal_id).
WITH accepted AS (
    SELECT seq FROM landed WHERE NOT is_duplicate
),
counted AS (
    SELECT seq, count(*) AS n, any_value(status) AS status
    FROM fact
    GROUP BY seq
)
SELECT coalesce(a.seq, c.seq) AS seq,
       CASE
           WHEN c.seq IS NULL THEN 'accepted signal missing from fact_signal'
           WHEN a.seq IS NULL THEN 'fact_signal row without an accepted signal'
           WHEN c.n <> 1 THEN 'signal appears ' || c.n || ' times'
           ELSE 'unknown status ' || coalesce(c.status, 'NULL')
       END AS problem
FROM accepted AS a
FULL JOIN counted AS c USING (seq)
WHERE a.seq IS NULL OR c.seq IS NULL OR c.n <> 1
   OR c.status IS NULL
   OR c.status NOT IN ('priced', 'unknown_customer', 'unattributed', 'unknown_product',
                       'unpriced', 'invalid_quantity')
