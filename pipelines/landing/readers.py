"""Reading signal files (JSONL, JSON, Parquet): large JSONL files are split into byte ranges
validated by worker processes and landed in file order, with bounded memory."""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq

from pipelines.landing.ingest import (
    Add,
    Batcher,
    IngestReport,
    Lander,
    OnErrors,
    OnProgress,
    encode_signal,
    encoder,
)
from pipelines.landing.lake import Lake
from pipelines.landing.validate import Validated, validate

CHUNK_BYTES = 4 << 20


def _ranges(path: Path, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Byte ranges `[start, end)` of about `chunk_bytes` that cover a JSONL file in whole lines
    (each ends just after a newline, or at the end of the file)."""
    size = path.stat().st_size
    start = 0
    with open(path, "rb") as fh:
        while start < size:
            end = min(start + chunk_bytes, size)
            fh.seek(end)
            while end < size:  # move `end` past the next newline
                block = fh.read(1 << 16)
                if not block:  # the file shrank while being read
                    break
                cut = block.find(b"\n")
                if cut >= 0:
                    end += cut + 1
                    break
                end += len(block)
            yield start, end
            start = end


def _validate_range(path: Path, start: int, end: int) -> tuple[Validated, int]:
    """Validate the whole lines in bytes `[start, end)` of a JSONL file: document `i` is the
    range's line `i` (blank lines skipped). Also returns the number of lines, so that the next
    range knows its first line number. Workers read the file themselves: only results travel."""
    with open(path, "rb") as fh:
        chunk = os.pread(fh.fileno(), end - start, start)
    lines = chunk.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return validate(lines), len(lines)


def _ingest_jsonl(
    path: Path, add: Add, progress: OnProgress | None, pool: ProcessPoolExecutor | None
) -> None:
    next_line = 1

    def handle(result: tuple[Validated, int], done: int) -> None:
        nonlocal next_line
        validated, n_lines = result
        first = next_line
        add(validated, (f"{path}:", first, ""))
        next_line += n_lines
        if progress:
            progress(done)

    ranges = _ranges(path, CHUNK_BYTES)
    if pool is None:
        for start, end in ranges:
            handle(_validate_range(path, start, end), end)
        return
    pending: deque[tuple[int, Future[tuple[Validated, int]]]] = deque()
    for start, end in ranges:
        pending.append((end, pool.submit(_validate_range, path, start, end)))
        while len(pending) > 2 * (pool._max_workers or 1):  # bounded read-ahead: bounded memory
            done, fut = pending.popleft()
            handle(fut.result(), done)
    while pending:
        done, fut = pending.popleft()
        handle(fut.result(), done)


def _ingest_json(path: Path, add: Add) -> None:
    raw = path.read_bytes()
    try:
        doc = msgspec.json.decode(raw, type=dict[str, list[msgspec.Raw]] | list[msgspec.Raw])
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise IngestError(f'{path}: expected {{"signals": [...]}} or a JSON list ({exc})') from exc
    if isinstance(doc, dict):
        if "signals" not in doc:
            raise IngestError(f'{path}: a JSON object file must hold a "signals" list')
        items, where = doc["signals"], "signals"
    else:
        items, where = doc, ""
    docs = [bytes(r) for r in items]
    add(validate(docs), (f"{path}:{where}[", 0, "]"))


_PARQUET_ALIASES = {
    "eventName": ("eventName", "event_name"),
    "customerId": ("customerId", "customer_id"),
    "externalCustomerId": ("externalCustomerId", "external_customer_id"),
    "productId": ("productId", "product_id"),
    "externalProductId": ("externalProductId", "external_product_id"),
    "timestamp": ("timestamp",),
    "data": ("data",),
    "idempotencyKey": ("idempotencyKey", "idempotency_key"),
    "customer": ("customer",),
    "attribution": ("attribution",),
}


def _parquet_docs(rows: list[dict[str, Any]], columns: dict[str, str]) -> list[bytes]:
    """Rebuild wire-format JSON for Parquet rows; a string `data` column is used verbatim."""
    docs = []
    for row in rows:
        sig: dict[str, Any] = {}
        get = {k: row.get(c) for k, c in columns.items()}
        if get.get("eventName") is not None:
            sig["eventName"] = get["eventName"]
        customer = get.get("customer") or {
            k: get[k] for k in ("customerId", "externalCustomerId") if get.get(k) is not None
        }
        sig["customer"] = customer
        attribution = get.get("attribution") or {
            k: get[k] for k in ("productId", "externalProductId") if get.get(k) is not None
        }
        if attribution:
            sig["attribution"] = attribution
        ts = get.get("timestamp")
        if ts is not None:
            sig["timestamp"] = ts.isoformat() if isinstance(ts, datetime) else ts
        if get.get("idempotencyKey") is not None:
            sig["idempotencyKey"] = get["idempotencyKey"]
        data = get.get("data")
        if isinstance(data, str):
            body = encoder.encode(sig)
            docs.append(body[:-1] + (b',"data":' if sig else b'"data":') + data.encode() + b"}")
            continue
        if data is not None:
            sig["data"] = data
        docs.append(encode_signal(sig))
    return docs


def _ingest_parquet(path: Path, add: Add, progress: OnProgress | None) -> None:
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    columns = {
        wire: next(a for a in aliases if a in names)
        for wire, aliases in _PARQUET_ALIASES.items()
        if any(a in names for a in aliases)
    }
    row = 0
    for record_batch in pf.iter_batches(batch_size=50_000, columns=sorted(set(columns.values()))):
        docs = _parquet_docs(record_batch.to_pylist(), columns)
        first = row
        add(validate(docs), (f"{path}:row ", first + 1, ""))
        row += record_batch.num_rows
        if progress:
            progress(row)


class IngestError(Exception):
    """A whole input cannot be read (as opposed to individual bad signals)."""


SUFFIXES = (".jsonl", ".json", ".parquet")


def ingest_file(
    lake: Lake,
    path: Path,
    *,
    on_errors: OnErrors | None = None,
    progress: OnProgress | None = None,
    pool: ProcessPoolExecutor | None = None,
    batch_rows: int = 500_000,
) -> IngestReport:
    """Ingest one `.jsonl`, `.json` or `.parquet` file; each batch is acknowledged once durable."""
    (report,) = ingest_files(
        lake,
        [path],
        on_errors=on_errors,
        progress=progress and (lambda _, done: progress(done)),
        pool=pool,
        batch_rows=batch_rows,
    )
    return report


def ingest_files(
    lake: Lake,
    paths: Sequence[Path],
    *,
    on_errors: OnErrors | None = None,
    progress: Callable[[Path, int], None] | None = None,
    pool: ProcessPoolExecutor | None = None,
    batch_rows: int = 500_000,
) -> list[IngestReport]:
    """Ingest `.jsonl`, `.json` and `.parquet` files in order: one report per file, each final
    (durable) when this returns. With a worker `pool`, worker processes validate while this
    process lands the previous batch in the background."""
    for path in paths:
        if not path.is_file():
            raise IngestError(f"{path}: no such file")
        if path.suffix.lower() not in SUFFIXES:
            raise IngestError(f"{path}: unsupported file type (expected {', '.join(SUFFIXES)})")
    lander = Lander(lake, background=pool is not None)
    batcher = Batcher(lander, batch_rows, on_errors)
    reports = []
    try:
        for path in paths:
            report = IngestReport()
            reports.append(report)
            add = functools.partial(batcher.add, source=str(path), report=report)
            step = progress and (lambda done, path=path: progress(path, done))
            suffix = path.suffix.lower()
            try:
                if suffix == ".jsonl":
                    _ingest_jsonl(path, add, step, pool)
                elif suffix == ".json":
                    _ingest_json(path, add)
                else:
                    _ingest_parquet(path, add, step)
            except IngestError:
                batcher.flush()  # the files before this one land whole, as if each were alone
                raise
        batcher.flush()
    except BaseException:
        lander.close(quiet=True)
        raise
    lander.close()
    return reports


def worker_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Processes for validating large JSONL files (fork: they inherit the imported modules),
    started at once: they fork before the caller opens the catalog or starts the landing thread
    (a fork copies neither safely)."""
    n = workers or min(os.cpu_count() or 1, 4)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=get_context("fork"))
    pool.submit(int).result()  # a fork pool starts all its processes on its first task
    return pool
