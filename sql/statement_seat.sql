-- statement_seat: who held each seat of the customer during the month (assignments overlapping
-- [$month_start, $month_end) in UTC), with the users' names, so statements name seats by their
-- users. Parameters as in statement_balance.sql.
SELECT a.customer_id, a.seat_id, a.user_id, u.name AS user_name,
       a.valid_from, a.valid_until
FROM dim_seat_assignment AS a
LEFT JOIN dim_user AS u USING (customer_id, user_id)
WHERE (a.valid_from IS NULL OR a.valid_from < timezone('UTC', CAST($month_end AS TIMESTAMP)))
  AND (a.valid_until IS NULL
       OR a.valid_until > timezone('UTC', CAST($month_start AS TIMESTAMP)))
  AND ($customer IS NULL OR a.customer_id = $customer)
ORDER BY a.customer_id, a.seat_id, a.valid_from NULLS FIRST, a.user_id
