-- peer_chdb: ClickHouse (chdb) prices the landed signals and sums them per customer
-- and UTC day, reading the lake's Parquet files itself. Parameters are bound ({name:Type}); the
-- {quantity_raw} placeholder is filled by benchmarks/peers.py with
--   multiIf(path_index = 1, JSONExtractRaw(data, {k1_1:String}, ...), ..., '')
-- (integers and bound parameters only): the raw JSON text at the rule's quantity path, '' if absent.
-- Exactness: Decimal(38, 12) quantities, Decimal(76, 18) products, Decimal(38, 6) credits. JSON
-- numbers come through ClickHouse's parser as Int64/UInt64 (exact) or Double (exact to 15
-- significant digits; Tally re-reads longer ones from the raw text).
WITH
signals AS (
    SELECT
        coalesce(customer_id, external_customer_id) AS customer,
        coalesce(product_id, external_product_id) AS product,
        event_name,
        timestamp,
        data
    FROM file({files:String}, Parquet)
    WHERE NOT is_duplicate
),
rules AS (
    -- Rules of one product and event never overlap (validated), so the latest rule that started
    -- at or before a signal's timestamp is the one in force, if it has not ended.
    SELECT
        rule_id,
        product_id,
        event_name,
        coalesce(valid_from, toDateTime64('1900-01-01 00:00:00', 6, 'UTC')) AS valid_from,
        valid_until,
        credit_cost,
        path_index
    FROM file({rules:String}, Parquet)
),
ruled AS (
    SELECT
        s.customer,
        s.timestamp,
        s.customer IN (SELECT customer_id FROM file({customers:String}, Parquet)) AS known_customer,
        r.rule_id IS NOT NULL AND (r.valid_until IS NULL OR s.timestamp < r.valid_until) AS in_force,
        r.credit_cost,
        {quantity_raw} AS raw
    FROM signals AS s
    ASOF LEFT JOIN rules AS r
        ON s.product = r.product_id AND s.event_name = r.event_name AND s.timestamp >= r.valid_from
),
quantity_text AS (
    -- Quantity: absent or null -> 1; a number >= 0, or a string holding a plain decimal; else NULL.
    SELECT
        *,
        multiIf(
            raw IN ('', 'null'), '1',
            startsWith(raw, '"'), JSONExtractString(raw),
            startsWith(raw, '-'), if(toFloat64OrNull(raw) = 0, '0', NULL),  -- -0 is >= 0
            match(raw, '^[0-9]+(\\.[0-9]+)?$'), raw,
            match(raw, '^[0-9]'), toString(toDecimal256OrNull(raw, 40)),  -- 1e-7, 1e21
            NULL) AS qtext  -- true, false, objects, arrays
    FROM ruled
),
priced AS (
    SELECT
        customer,
        timestamp,
        if(match(qtext, '^0*[0-9]{1,18}(\\.[0-9]{1,12}0*)?$'), toDecimal128OrNull(qtext, 12), NULL)
            AS q,
        -- round() on a Decimal rounds half away from zero; NULL if it does not fit DECIMAL(38, 6)
        if(known_customer AND in_force AND q IS NOT NULL,
           accurateCastOrNull(round(toDecimal256(credit_cost, 6) * toDecimal256(q, 12), 6),
                              'Decimal(38, 6)'),
           NULL) AS priced_credits
    FROM quantity_text
)
SELECT
    customer,
    toString(toDate(timestamp, 'UTC')) AS day,
    count() AS signals,
    toString(sum(coalesce(priced_credits, toDecimal128(0, 6)))) AS credits
FROM priced
GROUP BY customer, day
