"""Stage 4, publishing: the outputs as Iceberg tables, `warehouse.duckdb` for analysts, breakdowns
over any key."""
