"""Stage 1, landing: signals validated, deduplicated by idempotency key, committed to the lake."""
