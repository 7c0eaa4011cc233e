-- data_keys: every JSON path seen in the signals' `data`, per event: its JSON types, how many
-- signals carry it, first and last seen (`tally keys`): one row per event, path and type
-- (DuckDB's BIGINT and UBIGINT are both `integer`). Walks nested objects (arrays are leaves) up
-- to 8 levels deep; a key's pointer escapes `~` and `/` as RFC 6901 says. Times are UTC.
WITH RECURSIVE node(event_name, ts, keys, value, depth) AS (
    SELECT event_name, timestamp, []::VARCHAR[], CAST(data AS JSON), 0
    FROM fact_signal
    WHERE data IS NOT NULL
      AND ($event IS NULL OR event_name = $event)
      AND ($from_ts IS NULL OR timestamp >= timezone('UTC', CAST($from_ts AS TIMESTAMP)))
      AND ($to_ts IS NULL OR timestamp < timezone('UTC', CAST($to_ts AS TIMESTAMP)))
    UNION ALL
    SELECT n.event_name, n.ts, list_append(n.keys, k),
           json_extract(n.value, '/' || replace(replace(k, '~', '~0'), '/', '~1')), n.depth + 1
    FROM node AS n, unnest(json_keys(n.value)) AS t(k)
    WHERE json_type(n.value) = 'OBJECT' AND n.depth < 8
)
SELECT event_name, keys,
       CASE json_type(value)
           WHEN 'BIGINT' THEN 'integer' WHEN 'UBIGINT' THEN 'integer' WHEN 'DOUBLE' THEN 'number'
           WHEN 'VARCHAR' THEN 'string' ELSE lower(json_type(value))
       END AS json_type,
       count(*) AS signals,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM node
WHERE depth > 0
GROUP BY ALL
ORDER BY event_name, keys, json_type
