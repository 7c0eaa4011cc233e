-- balance_end_of_day: THE balance "at the end of UTC day D", the one definition that the HTTP API
-- (sql/api_balances.sql), `tally balances`, statements (sql/statement_balance.sql) and analysts use:
-- the ledger's state after every event strictly before D + 1 day 00:00 UTC. So a grant that starts
-- at D + 1 00:00 has not started yet, and a grant that expires at D + 1 00:00 is still counted on D
-- (its remaining credits are forfeited on D + 1, as that day's `expired`). A NULL day means the last
-- processed day. Included in sql/warehouse.sql.

-- Pools and seats: the balance_snapshot rows of day D (`SELECT * FROM balances_as_of('2026-11-14')`).
CREATE MACRO balances_as_of(day) AS TABLE
SELECT *
FROM balance_snapshot
WHERE date = coalesce(CAST(day AS DATE), (SELECT max(date) FROM balance_snapshot));

-- Grants in force at the end of day D, with what they had used, forfeited and had left then; per
-- pool, sum(remaining) is balances_as_of(D).available
-- (`SELECT * FROM grant_balances_as_of('2026-11-14') WHERE customer_id = 'cus_acme'`).
CREATE MACRO grant_balances_as_of(day) AS TABLE
WITH d AS (
    SELECT coalesce(CAST(day AS DATE), (SELECT max(date) FROM balance_snapshot)) AS day
)
SELECT d.day AS date, g.grant_id, g.customer_id, g.recipient_type, g.recipient_id, g.currency,
       g.amount, g.starts_at, g.expires_at, g.priority, g.origin,
       CAST(b.used AS DECIMAL(38, 6)) AS used,
       CAST(b.expired AS DECIMAL(38, 6)) AS expired,
       CAST(b.remaining AS DECIMAL(38, 6)) AS remaining
FROM d
JOIN grant_balance AS b ON b.date = d.day
JOIN internal.credit_grant_config AS g USING (grant_id)
WHERE g.starts_at < internal.utc(d.day + INTERVAL 1 DAY)
  AND (g.expires_at IS NULL OR g.expires_at >= internal.utc(d.day + INTERVAL 1 DAY));
