-- check_signal_status: every accepted, non-duplicate signal of the checked days appears in
-- fact_signal exactly once, with exactly one known status (zero rows = pass).
-- Inputs: views `landed` (lake files of the days) and `fact` (fact_signal of the same days).
WITH accepted AS (
    SELECT signal_id FROM landed WHERE NOT is_duplicate
),
counted AS (
    SELECT signal_id, count(*) AS n, count(DISTINCT status) AS statuses, any_value(status) AS status
    FROM fact
    GROUP BY signal_id
)
SELECT coalesce(a.signal_id, c.signal_id) AS signal_id,
       CASE
           WHEN c.signal_id IS NULL THEN 'accepted signal missing from fact_signal'
           WHEN a.signal_id IS NULL THEN 'fact_signal row without an accepted signal'
           WHEN c.n <> 1 THEN 'signal appears ' || c.n || ' times'
           ELSE 'unknown status ' || coalesce(c.status, 'NULL')
       END AS problem
FROM accepted AS a
FULL JOIN counted AS c USING (signal_id)
WHERE a.signal_id IS NULL OR c.signal_id IS NULL OR c.n <> 1
   OR c.status IS NULL
   OR c.status NOT IN ('priced', 'unknown_customer', 'unattributed', 'unknown_product',
                       'unpriced', 'invalid_quantity')
