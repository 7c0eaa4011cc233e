-- check_idempotency: idempotency keys charged more than once among the checked days
-- (zero rows = pass). Across days, the lake's index proves each charged copy is the first one.
-- Inputs: view `fact` (fact_signal of the days).
SELECT idempotency_key, count(*) AS charged
FROM fact
WHERE idempotency_key IS NOT NULL
GROUP BY idempotency_key
HAVING count(*) > 1
