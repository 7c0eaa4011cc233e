"""Stage 3, the ledger: grants burned down by priced consumption, exactly, day by day."""
