-- priced_signal: price the landed signals of one day (docs/concepts.md).
-- Inputs: view `landed` (the day's lake files), the dim_* tables, `rule` (dim_pricing_rule plus the
-- 1-based `path_index` of its quantity pointer in $pointers). $pointers[1] is always
-- '/external_user_id'; data is parsed once per signal, for every pointer at the same time.
-- The hot_columns placeholder is filled by pipelines/pricing/price.py with `x[<j>] AS hot_key_<i>` (integers
-- only): the configured hot keys' JSON values, kept as columns for fast breakdowns.
WITH seat_cover_raw AS (
    -- When each user's seat carries a seat grant, per currency: assignment ∩ grant intervals.
    SELECT a.customer_id, a.user_id, g.currency, a.seat_id,
           greatest(coalesce(a.valid_from, g.starts_at), g.starts_at) AS t0,
           least(coalesce(a.valid_until, 'infinity'::TIMESTAMPTZ),
                 coalesce(g.expires_at, 'infinity'::TIMESTAMPTZ)) AS t1
    FROM dim_seat_assignment AS a
    JOIN dim_credit_grant AS g ON g.seat_id = a.seat_id
),
seat_cover_marked AS (
    SELECT *,
           CASE WHEN t0 <= max(t1) OVER (
               PARTITION BY customer_id, user_id, currency, seat_id ORDER BY t0
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS starts_island
    FROM seat_cover_raw
    WHERE t0 < t1
),
seat_cover AS (
    -- Overlapping grants of one seat merged: a user is in one seat at a time (validated config),
    -- so at most one row covers any (customer, user, currency, instant).
    SELECT customer_id, user_id, currency, seat_id, min(t0) AS t0, max(t1) AS t1
    FROM (
        SELECT *, sum(starts_island) OVER (
            PARTITION BY customer_id, user_id, currency, seat_id ORDER BY t0
            ROWS UNBOUNDED PRECEDING) AS island
        FROM seat_cover_marked
    )
    GROUP BY customer_id, user_id, currency, seat_id, island
),
extracted AS (
    SELECT
        l.*,
        json_extract(l.data, $pointers) AS x
    FROM landed AS l
    WHERE NOT l.is_duplicate
),
resolved AS (
    SELECT
        e.*,
        c.customer_id AS known_customer,
        p.product_id AS known_product,
        r.rule_id,
        r.currency,
        r.credit_cost,
        r.quantity_pointer,
        CASE WHEN r.quantity_pointer IS NOT NULL THEN e.x[r.path_index] END AS qv,
        CASE WHEN json_type(e.x[1]) = 'VARCHAR' THEN json_extract_string(e.x[1], '$') END AS user_key
    FROM extracted AS e
    LEFT JOIN dim_customer AS c
        ON c.customer_id = coalesce(e.customer_id, e.external_customer_id)
    LEFT JOIN dim_product AS p
        ON p.product_id = coalesce(e.product_id, e.external_product_id)
    LEFT JOIN rule AS r
        ON r.product_id = p.product_id
        AND r.event_name = e.event_name
        AND (r.valid_from IS NULL OR r.valid_from <= e.timestamp)
        AND (r.valid_until IS NULL OR e.timestamp < r.valid_until)
),
quantity_text AS (
    -- The quantity as plain decimal text, or NULL when it is not a valid quantity (docs/concepts.md).
    SELECT
        *,
        CASE
            WHEN quantity_pointer IS NULL OR qv IS NULL OR json_type(qv) = 'NULL' THEN '1'
            WHEN json_type(qv) IN ('UBIGINT', 'BIGINT') THEN qv::VARCHAR
            WHEN json_type(qv) = 'DOUBLE' THEN
                CASE
                    WHEN CAST(qv AS DOUBLE) = 0 THEN '0'  -- -0.0 is a number >= 0
                    -- Shortest round-trip text of a double equals what was sent when it has at
                    -- most 15 significant digits; longer or exponent forms are re-read exactly.
                    WHEN regexp_full_match(qv::VARCHAR, '-?[0-9]+\.[0-9]+')
                        AND length(ltrim(replace(replace(qv::VARCHAR, '-', ''), '.', ''), '0')) <= 15
                        THEN qv::VARCHAR
                    ELSE tally_exact_number(data, quantity_pointer)
                END
            WHEN json_type(qv) = 'VARCHAR' THEN json_extract_string(qv, '$')
        END AS qtext
    FROM resolved
),
quantity AS (
    SELECT
        *,
        CASE
            WHEN regexp_full_match(qtext, '[0-9]+(\.[0-9]+)?')
                AND length(ltrim(split_part(qtext, '.', 1), '0')) <= 18
                AND length(rtrim(split_part(qtext, '.', 2), '0')) <= 12
                THEN CAST(qtext AS DECIMAL(38, 12))
        END AS q
    FROM quantity_text
),
priced AS (
    SELECT
        *,
        -- Exact: DECIMAL(18,6) x DECIMAL(30,12) -> DECIMAL(38,18), rounded half away from zero to 6
        -- places by the cast; the double-precision guard only picks the rows far from overflow.
        CASE
            WHEN q IS NULL THEN NULL
            WHEN credit_cost < 1e12 AND CAST(credit_cost AS DOUBLE) * CAST(q AS DOUBLE) < 1e19
                THEN CAST(CAST(credit_cost AS DECIMAL(18, 6)) * CAST(q AS DECIMAL(30, 12))
                          AS DECIMAL(38, 6))
            -- Huge products (rare): exact in Python; NULL when they do not fit DECIMAL(38,6).
            ELSE CAST(tally_exact_product(CAST(credit_cost AS VARCHAR), CAST(q AS VARCHAR))
                      AS DECIMAL(38, 6))
        END AS raw_credits,
        CASE
            WHEN known_customer IS NULL THEN 'unknown_customer'
            WHEN product_id IS NULL AND external_product_id IS NULL THEN 'unattributed'
            WHEN known_product IS NULL THEN 'unknown_product'
            WHEN rule_id IS NULL THEN 'unpriced'
            WHEN q IS NULL OR raw_credits IS NULL THEN 'invalid_quantity'
            ELSE 'priced'
        END AS status
    FROM quantity
)
SELECT
    p.signal_id,
    p.seq,
    p.idempotency_key,
    p.event_name,
    coalesce(p.known_customer, p.customer_id, p.external_customer_id) AS customer_id,
    coalesce(p.known_product, p.product_id, p.external_product_id) AS product_id,
    p.user_key AS user_id,
    p.timestamp,
    p.received_at,
    p.data,
    p.status,
    p.rule_id,
    CASE WHEN p.rule_id IS NOT NULL THEN p.currency END AS currency,
    CASE WHEN p.status = 'priced' THEN p.q END AS quantity,
    CAST(p.credit_cost AS DECIMAL(38, 6)) AS credit_cost,
    CASE WHEN p.status = 'priced' THEN p.raw_credits ELSE CAST(0 AS DECIMAL(38, 6)) END AS credits,
    CASE
        WHEN p.status <> 'priced' THEN NULL
        WHEN s.seat_id IS NOT NULL THEN 'seat'
        ELSE 'organization'
    END AS recipient_type,
    CASE WHEN p.status = 'priced' THEN coalesce(s.seat_id, p.known_customer) END AS recipient_id,
    CASE WHEN p.status = 'invalid_quantity' THEN coalesce(p.qtext, p.qv::VARCHAR) END AS invalid_quantity{hot_columns}
FROM priced AS p
-- A priced signal whose user sits, at `timestamp`, in a seat that has a seat-scoped grant in the
-- rule's currency in force at `timestamp` (exhausted or not) is charged to that seat (docs/concepts.md).
LEFT JOIN seat_cover AS s
    ON s.customer_id = p.known_customer
    AND s.user_id = p.user_key
    AND s.currency = p.currency
    AND s.t0 <= p.timestamp
    AND p.timestamp < s.t1
