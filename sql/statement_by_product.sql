-- statement_by_product: consumption by product and event (input: `month_signal`).
SELECT customer_id, currency, product_id, event_name,
       CAST(sum(signals) AS BIGINT) AS signals,
       sum(quantity) AS quantity,
       CAST(sum(credits) AS DECIMAL(38, 6)) AS credits
FROM month_signal
GROUP BY ALL
ORDER BY customer_id, currency, credits DESC, product_id, event_name
