"""Stage 2, pricing: the billing configuration, and each day's signals priced into `fact_signal`."""
