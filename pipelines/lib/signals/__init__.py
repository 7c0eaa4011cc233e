"""Signal validation and landing: one code path for `tally ingest`, HTTP and the Python API.

Every entry point turns what it received into a sequence of raw JSON documents (bytes, one per
signal) and calls `validate`. A signal is decoded by msgspec into a typed struct in C; `data` is
kept as the exact bytes that were sent (`msgspec.Raw`), so keys, key order, case and number
digits survive.
Rejected signals keep their raw bytes and a one-line reason; both go to `Lake.land`, which commits
accepted signals and rejects in one durable transaction (docs/concepts.md).

Large JSONL files are split into chunks validated by worker processes (validation is CPU-bound and
per-signal); chunks are landed in file order, in batches, with bounded memory.
"""

from __future__ import annotations

from pipelines.lib.signals.landing import IngestReport, as_text, ingest_signals
from pipelines.lib.signals.readers import (
    CHUNK_BYTES,
    SUFFIXES,
    IngestError,
    ingest_file,
    ingest_files,
    worker_pool,
)
from pipelines.lib.signals.validate import (
    MAX_NAME,
    Validated,
    explain,
    raw_depth,
    split_bulk,
    validate,
)

__all__ = [
    "CHUNK_BYTES",
    "IngestError",
    "IngestReport",
    "MAX_NAME",
    "SUFFIXES",
    "Validated",
    "as_text",
    "explain",
    "ingest_file",
    "ingest_files",
    "ingest_signals",
    "raw_depth",
    "split_bulk",
    "validate",
    "worker_pool",
]
