-- check_first_copy: charged rows of view `unverified` that are not the first copy of their
-- idempotency key the lake received (zero rows = pass). The set-based twin of the lake index
-- lookups in pipelines/billing/checks.py, used when most of the lake is being verified at once.
-- Inputs: view `unverified` (fact_signal parts), view `lake_keys` (idempotency_key, seq of every
-- landed signal, duplicates included).
WITH charged AS (
    SELECT idempotency_key, seq FROM unverified WHERE idempotency_key IS NOT NULL
),
first_copy AS (
    SELECT idempotency_key, min(seq) AS seq
    FROM lake_keys
    WHERE idempotency_key IS NOT NULL
    GROUP BY idempotency_key
)
SELECT c.idempotency_key, 'charged copy is not the first received' AS problem
FROM charged AS c
LEFT JOIN first_copy AS f USING (idempotency_key)
WHERE f.seq IS DISTINCT FROM c.seq
