-- statement_by_user: consumption by user and by the recipient that paid for it (the user's seat
-- or the organization pool); `user_id` is NULL for signals without a known user (input:
-- `month_signal`).
SELECT s.customer_id, s.currency, s.user_id, u.name AS user_name, s.recipient_type,
       s.recipient_id,
       CAST(sum(s.signals) AS BIGINT) AS signals,
       CAST(sum(s.credits) AS DECIMAL(38, 6)) AS credits
FROM month_signal AS s
LEFT JOIN dim_user AS u USING (customer_id, user_id)
GROUP BY ALL
ORDER BY s.customer_id, s.currency, credits DESC, s.user_id NULLS LAST, s.recipient_id
