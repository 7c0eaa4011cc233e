"""Stage 5, the ledger for people: monthly statements, period close, the report, HTML and PDF."""
