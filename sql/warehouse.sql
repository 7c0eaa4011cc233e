-- warehouse: the tables and views analysts query in data/warehouse.duckdb (docs/warehouse.md).
-- Published into a new file that replaces the old one atomically, so an analyst holding the old
-- file open keeps a consistent snapshot and never blocks the pipeline. dim_* tables come from the
-- config; every comment comes from pipelines/warehouse/publish.py (docs/schema.md is made from them).
--
-- Portable: no view holds an absolute path. Each reads its files through internal.files(), i.e.
-- relative to internal.home(): the session variable `tally_home` when set (every `tally` command
-- sets it to the directory the warehouse sits in), else the directory it was published in (the
-- {home} literal). A copied or moved home works in `tally`; in another client run
-- `SET VARIABLE tally_home = '/the/new/home'` (or `tally run` there, which republishes it).
-- The {name} placeholders are quoted literals filled in by pipelines/warehouse/publish.py: each
-- source's file glob relative to the home (or an empty file of the right schema while it has no
-- files yet); {hot_key_*} list the hot-key columns (identifiers quoted by publish.py).
--
-- UTC always: `day`/`date` columns and the macros' day boundaries are UTC days, whatever the
-- session's TimeZone (the DuckDB CLI defaults to local time).

CREATE SCHEMA IF NOT EXISTS internal;

CREATE MACRO internal.home() AS coalesce(getvariable('tally_home'), {home});

CREATE MACRO internal.files(relative) AS
    CASE WHEN relative LIKE 's3://%' THEN relative ELSE internal.home() || '/' || relative END;

CREATE MACRO internal.file_list(relatives) AS
    list_transform(relatives, lambda relative: internal.files(relative));

-- A day ('2026-11-02'), date, timestamp or RFC 3339 text as an instant: bare days and times are
-- UTC, never the session's TimeZone.
CREATE MACRO internal.utc(x) AS
CASE WHEN typeof(x) = 'TIMESTAMP WITH TIME ZONE' THEN CAST(x AS TIMESTAMPTZ)
     ELSE timezone('UTC', CAST(x AS TIMESTAMP)) END;

-- The priced signals as pricing wrote them (hot_key_<n>: JSON text of the n-th hot key).
CREATE VIEW internal.priced_signal AS
SELECT *
FROM read_parquet(internal.file_list({fact_signal}), hive_partitioning = false);

CREATE VIEW fact_signal AS
SELECT * EXCLUDE (seq{hot_key_exclude}),
       CAST(timezone('UTC', "timestamp") AS DATE) AS day{hot_key_named}
FROM internal.priced_signal;

-- fact_signal summed per day and built-in dimension and hot key (fast breakdowns). A day that
-- received late signals has a rollup part per pricing: internal.signal_rollup_part is the parts
-- as written (what breakdowns sum), signal_rollup one row per group. Parts written before the
-- rollup had currency and status read NULL there (breakdowns then read fact_signal).
CREATE VIEW internal.signal_rollup_part AS
SELECT *
FROM read_parquet(internal.file_list({signal_rollup}), hive_partitioning = false,
                  union_by_name = true);

CREATE VIEW signal_rollup AS
SELECT * EXCLUDE (signals, quantity, credits{hot_key_exclude}){hot_key_named},
       CAST(sum(signals) AS BIGINT) AS signals,
       sum(quantity) AS quantity,
       CAST(sum(credits) AS DECIMAL(38, 6)) AS credits
FROM internal.signal_rollup_part
GROUP BY ALL;

CREATE VIEW balance_snapshot AS
SELECT *
FROM read_parquet(internal.file_list({balance_snapshot}), hive_partitioning = false);

CREATE VIEW grant_balance AS
SELECT *
FROM read_parquet(internal.file_list({grant_balance}), hive_partitioning = false);

CREATE VIEW fact_credit_transaction AS
SELECT type, customer_id, recipient_type, recipient_id, currency, amount, occurred_at, grant_id,
       CAST(NULL AS VARCHAR) AS signal_id
FROM read_parquet(internal.file_list({credit_event}), hive_partitioning = false)
UNION ALL
SELECT 'spend', customer_id, recipient_type, recipient_id, currency, -credits, timestamp, NULL,
       signal_id
FROM internal.priced_signal
WHERE status = 'priced';

-- Everything landed, duplicates included (flagged). During compaction a signal can briefly sit in
-- two files: one row per landing sequence number. `shard_key` orders the lake's files (files
-- landed before it existed lack it).
CREATE VIEW raw_signal AS
SELECT COLUMNS(lambda c: c NOT IN ('seq', 'shard_key'))
FROM read_parquet(internal.files({signals}), hive_partitioning = false, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY seq) = 1;

CREATE VIEW rejected_signal AS
SELECT *
FROM read_parquet(internal.files({rejects}), hive_partitioning = false);

-- Grants with their state at the end of the last processed day.
CREATE VIEW dim_credit_grant AS
SELECT g.*,
       coalesce(b.used, 0)::DECIMAL(38, 6) AS used,
       coalesce(b.expired, 0)::DECIMAL(38, 6) AS expired,
       coalesce(b.remaining, g.amount)::DECIMAL(38, 6) AS remaining
FROM internal.credit_grant_config AS g
LEFT JOIN (
    SELECT * FROM grant_balance
    QUALIFY date = max(date) OVER ()
) AS b USING (grant_id);

-- What the final monthly statements said (pipelines/statements/closing.py): per month, recipient and
-- currency the month's own figures (kind 'statement') and the adjustment lines each carried for
-- earlier months (kind 'adjustment').
CREATE VIEW statement_line AS
SELECT *
FROM read_parquet(internal.files({statement_line}), hive_partitioning = false);

-- Adjustments to closed months: what the ledger now says for a month whose statement is final,
-- minus what was stated; 'pending' in the first open month's statement, 'final' once carried by
-- a final statement (`SELECT * FROM statement_adjustment WHERE customer_id = 'cus_acme'`).
CREATE VIEW statement_adjustment AS
{statement_adjustment_sql};

-- Balances at the end of a UTC day: balances_as_of(day) and grant_balances_as_of(day), defined
-- once in sql/balance_end_of_day.sql.
{balance_end_of_day_sql}

-- Credits by one data key and currency over [from_ts, to_ts) (UTC days or instants), priced
-- signals only: a JSON pointer such as '/team'
-- (`SELECT * FROM credits_by_key('/team', '2026-11-01', '2026-12-01')`).
CREATE MACRO credits_by_key(pointer, from_ts, to_ts) AS TABLE
SELECT json_extract_string(data, pointer) AS key_value,
       currency,
       count(*) AS priced_signals,
       sum(quantity) AS quantity,
       sum(credits) AS credits
FROM fact_signal
WHERE status = 'priced'
  AND timestamp >= internal.utc(from_ts) AND timestamp < internal.utc(to_ts)
GROUP BY ALL
ORDER BY currency, credits DESC, key_value NULLS LAST;

-- Credits by two data keys and currency over [from_ts, to_ts), priced signals only, e.g. team
-- by model: `SELECT * FROM credits_by_keys('/team', '/model', '2026-11-01', '2026-12-01')`.
CREATE MACRO credits_by_keys(pointer_a, pointer_b, from_ts, to_ts) AS TABLE
SELECT json_extract_string(data, pointer_a) AS key_a,
       json_extract_string(data, pointer_b) AS key_b,
       currency,
       count(*) AS priced_signals,
       sum(quantity) AS quantity,
       sum(credits) AS credits
FROM fact_signal
WHERE status = 'priced'
  AND timestamp >= internal.utc(from_ts) AND timestamp < internal.utc(to_ts)
GROUP BY ALL
ORDER BY currency, credits DESC, key_a NULLS LAST, key_b NULLS LAST;

-- Examples (run them in `duckdb -readonly data/warehouse.duckdb`; docs/analysts.md has more):
--   SELECT * FROM balances_as_of('2026-11-14') WHERE overage > 0;
--   SELECT event_name, status, currency, count(*), sum(credits) FROM fact_signal GROUP BY ALL;
--   SELECT date, closing_balance FROM balance_snapshot WHERE recipient_id = 'cus_acme' ORDER BY 1;
--   SELECT team, currency, sum(credits) FROM fact_signal WHERE status = 'priced' GROUP BY ALL;
