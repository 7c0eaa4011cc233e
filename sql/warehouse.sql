-- warehouse: the tables and views analysts query in data/warehouse.duckdb (PRODUCT.md §5).
-- Published into a new file that replaces the old one atomically, so an analyst holding the old
-- file open keeps a consistent snapshot and never blocks the pipeline. The {name} placeholders are
-- quoted literals filled in by pipelines/lib/warehouse.py: each source's absolute file glob (or an
-- empty file of the right schema while it has no files yet). dim_* tables come from the config.

CREATE VIEW fact_signal AS
SELECT * EXCLUDE (seq)
FROM read_parquet({fact_signal}, hive_partitioning = false);

-- fact_signal summed per day and built-in dimension and hot key (fast breakdowns). A day that
-- received late signals has a rollup part per pricing: signal_rollup_part is the parts as
-- written (what breakdowns sum), signal_rollup one row per group.
CREATE VIEW signal_rollup_part AS
SELECT *
FROM read_parquet({signal_rollup}, hive_partitioning = false);

CREATE VIEW signal_rollup AS
SELECT * EXCLUDE (signals, quantity, credits),
       CAST(sum(signals) AS BIGINT) AS signals,
       sum(quantity) AS quantity,
       sum(credits) AS credits
FROM signal_rollup_part
GROUP BY ALL;

CREATE VIEW balance_snapshot AS
SELECT *
FROM read_parquet({balance_snapshot}, hive_partitioning = false);

CREATE VIEW grant_balance AS
SELECT *
FROM read_parquet({grant_balance}, hive_partitioning = false);

CREATE VIEW fact_credit_transaction AS
SELECT type, customer_id, recipient_type, recipient_id, currency, amount, occurred_at, grant_id,
       CAST(NULL AS VARCHAR) AS signal_id
FROM read_parquet({credit_event}, hive_partitioning = false)
UNION ALL
SELECT 'spend', customer_id, recipient_type, recipient_id, currency, -credits, timestamp, NULL,
       signal_id
FROM fact_signal
WHERE status = 'priced';

-- Everything landed, duplicates included (flagged). During compaction a signal can briefly sit in
-- two files: one row per landing sequence number.
CREATE VIEW raw_signal AS
SELECT * EXCLUDE (seq)
FROM read_parquet({signals}, hive_partitioning = false)
QUALIFY row_number() OVER (PARTITION BY seq) = 1;

CREATE VIEW rejected_signal AS
SELECT *
FROM read_parquet({rejects}, hive_partitioning = false);

-- Grants with their state at the end of the last processed day.
CREATE VIEW dim_credit_grant AS
SELECT g.*,
       coalesce(b.used, 0)::DECIMAL(38, 6) AS used,
       coalesce(b.expired, 0)::DECIMAL(38, 6) AS expired,
       coalesce(b.remaining, g.amount)::DECIMAL(38, 6) AS remaining
FROM credit_grant_config AS g
LEFT JOIN (
    SELECT * FROM grant_balance
    QUALIFY date = max(date) OVER ()
) AS b USING (grant_id);

-- What the final monthly statements said (pipelines/lib/closing.py): per month, recipient and
-- currency the month's own figures (kind 'statement') and the adjustment lines each carried for
-- earlier months (kind 'adjustment').
CREATE VIEW statement_line AS
SELECT *
FROM read_parquet({statement_line}, hive_partitioning = false);

-- Adjustments to closed months: what the ledger now says for a month whose statement is final,
-- minus what was stated; 'pending' in the first open month's statement, 'final' once carried by
-- a final statement (`SELECT * FROM statement_adjustment WHERE customer_id = 'cus_acme'`).
CREATE VIEW statement_adjustment AS
{statement_adjustment_sql};

-- Balances as of a day: the snapshot rows of that day (`SELECT * FROM balances_as_of('2026-11-14')`).
CREATE MACRO balances_as_of(day) AS TABLE
SELECT * FROM balance_snapshot WHERE date = CAST(day AS DATE);

-- Credits by one data key over [from_ts, to_ts): a JSON pointer such as '/team'
-- (`SELECT * FROM credits_by_key('/team', '2026-11-01', '2026-12-01')`).
CREATE MACRO credits_by_key(pointer, from_ts, to_ts) AS TABLE
SELECT json_extract_string(data, pointer) AS key_value,
       count(*) AS signals,
       sum(quantity) AS quantity,
       sum(credits) AS credits
FROM fact_signal
WHERE timestamp >= CAST(from_ts AS TIMESTAMPTZ) AND timestamp < CAST(to_ts AS TIMESTAMPTZ)
GROUP BY ALL
ORDER BY credits DESC;

-- Credits by two data keys over [from_ts, to_ts), e.g. team by model:
-- `SELECT * FROM credits_by_keys('/team', '/model', '2026-11-01', '2026-12-01')`.
CREATE MACRO credits_by_keys(pointer_a, pointer_b, from_ts, to_ts) AS TABLE
SELECT json_extract_string(data, pointer_a) AS key_a,
       json_extract_string(data, pointer_b) AS key_b,
       count(*) AS signals,
       sum(quantity) AS quantity,
       sum(credits) AS credits
FROM fact_signal
WHERE timestamp >= CAST(from_ts AS TIMESTAMPTZ) AND timestamp < CAST(to_ts AS TIMESTAMPTZ)
GROUP BY ALL
ORDER BY credits DESC;

-- Examples (run them in `duckdb -readonly data/warehouse.duckdb`):
--   SELECT * FROM balances_as_of('2026-11-14') WHERE overage > 0;
--   SELECT event_name, status, count(*), sum(credits) FROM fact_signal GROUP BY ALL;
--   SELECT date, closing_balance FROM balance_snapshot WHERE recipient_id = 'cus_acme' ORDER BY 1;
--   SELECT data->>'$.model' AS model, sum(credits) FROM fact_signal GROUP BY 1;
