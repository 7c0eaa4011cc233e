-- ledger_segment: priced spends summed between ledger boundaries (docs/concepts.md).
-- Inputs: view `fact` (fact_signal rows of the days being processed) and `dim_credit_grant`.
-- A recipient's boundaries are its grants' starts and expiries, plus every UTC midnight. Between
-- two boundaries the grants in force do not change, so only the sum of the spends matters: the
-- burn-down (pipelines/ledger/burndown.py) then works on segments, never on single signals.
-- A spend at exactly a boundary instant falls in the segment that starts there: at one instant,
-- expiries and grant starts come before spends.
-- Most (recipient, currency, day)s hold no boundary after midnight: their spends are summed per
-- day directly; only the spends of the few days that a grant start or expiry splits are placed by
-- an ASOF join.
WITH spend AS (
    SELECT customer_id, recipient_type, recipient_id, currency, timestamp AS t,
           date_trunc('day', timestamp) AS day, credits
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
split_day AS (
    SELECT DISTINCT recipient_type, recipient_id, currency, date_trunc('day', t) AS day
    FROM boundary
    WHERE t > date_trunc('day', t)
),
marked AS (
    SELECT s.*, d.day IS NOT NULL AS split
    FROM spend AS s
    LEFT JOIN split_day AS d
        ON s.recipient_type = d.recipient_type
        AND s.recipient_id = d.recipient_id
        AND s.currency = d.currency
        AND s.day = d.day
),
placed AS (
    SELECT s.*, b.t AS boundary
    FROM (SELECT * FROM marked WHERE split) AS s
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
    day AS segment_start,
    sum(credits) AS spent,
    count(*) AS signals
FROM marked
WHERE NOT split
GROUP BY ALL
UNION ALL
SELECT
    customer_id,
    recipient_type,
    recipient_id,
    currency,
    greatest(coalesce(boundary, day), day) AS segment_start,
    sum(credits) AS spent,
    count(*) AS signals
FROM placed
GROUP BY ALL
ORDER BY ALL
