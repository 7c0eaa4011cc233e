-- ledger_segment: priced spends summed between ledger boundaries (PRODUCT.md §5).
-- Inputs: view `fact` (fact_signal rows of the days being processed) and `dim_credit_grant`.
-- A recipient's boundaries are its grants' starts and expiries, plus every UTC midnight. Between
-- two boundaries the grants in force do not change, so only the sum of the spends matters: the
-- burn-down (pipelines/lib/ledger.py) then works on segments, never on single signals.
-- A spend at exactly a boundary instant falls in the segment that starts there: at one instant,
-- expiries and grant starts come before spends.
WITH spend AS (
    SELECT customer_id, recipient_type, recipient_id, currency, timestamp AS t, credits
    FROM fact
    WHERE status = 'priced'
),
boundary AS (
    SELECT recipient_type, recipient_id, currency, starts_at AS t FROM dim_credit_grant
    UNION
    SELECT recipient_type, recipient_id, currency, expires_at AS t
    FROM dim_credit_grant
    WHERE expires_at IS NOT NULL
),
placed AS (
    SELECT s.*, b.t AS boundary
    FROM spend AS s
    ASOF LEFT JOIN boundary AS b
        ON s.recipient_type = b.recipient_type
        AND s.recipient_id = b.recipient_id
        AND s.currency = b.currency
        AND s.t >= b.t
)
SELECT
    customer_id,
    recipient_type,
    recipient_id,
    currency,
    greatest(coalesce(boundary, date_trunc('day', t)), date_trunc('day', t)) AS segment_start,
    sum(credits) AS spent,
    count(*) AS signals
FROM placed
GROUP BY ALL
ORDER BY ALL
