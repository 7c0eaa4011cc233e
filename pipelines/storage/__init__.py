"""Where tables live: the Iceberg catalog (SQLite or PostgreSQL), files (local or S3), atomic
writes and integrity checks."""
