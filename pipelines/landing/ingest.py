"""Landing validated signals: batches handed to `Lake.land` by one background thread while the
caller validates the next ones; the report of what was ingested, duplicated and rejected."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.landing.lake import Lake
from pipelines.landing.schema import LandResult
from pipelines.landing.validate import INCOMING_SCHEMA, Validated, concat_text, validate


@dataclass
class IngestReport:
    """Totals of one ingestion, plus the first bad records as `(location, reason)`."""

    ingested: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: LandResult) -> None:
        self.ingested += result.ingested
        self.duplicates += result.duplicates
        self.failed += result.failed


OnErrors = Callable[[list[tuple[str, str]]], None]
OnProgress = Callable[[int], None]
# Where document i of a chunk came from: prefix + str(i + base) + suffix (built column-wise).
Locate = tuple[str, int, str]
Add = Callable[[Validated, Locate], None]  # a Batcher's add, for one input
MAX_REPORT_ERRORS = 10_000  # (location, reason) pairs kept in a report; every reject is counted


class Lander:
    """Lands batches in order, one at a time; in the background when `background`, so that
    reading and validating the next batch overlaps landing this one (Parquet writing, LMDB and
    fsync release the GIL). A batch's completion (counts, error callback) runs in the caller's
    thread, in order, once the batch is durable; `close` waits for the last one."""

    def __init__(self, lake: Lake, background: bool):
        self.lake = lake
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tally-land") if background else None
        self._pending: tuple[Future[LandResult], Callable[[LandResult], None]] | None = None

    def submit(
        self, incoming: pa.Table, rejects: pa.Table | None, done: Callable[[LandResult], None]
    ) -> None:
        self.wait()
        if self._pool is None:
            done(self.lake.land(incoming, rejects))
        else:
            self._pending = (self._pool.submit(self.lake.land, incoming, rejects), done)

    def wait(self) -> None:
        if self._pending is not None:
            future, done = self._pending
            self._pending = None
            done(future.result())

    def close(self, quiet: bool = False) -> None:
        """Wait for the last batch; `quiet` (when another error is on its way) does not let a
        landing error replace it."""
        try:
            self.wait()
        except Exception:
            if not quiet:
                raise
        finally:
            if self._pool is not None:
                self._pool.shutdown()


class Batcher:
    """Accumulates validated chunks, of one or several inputs, and lands them in batches of about
    `batch_rows` signals (few large commits: the idempotency index is rewritten per commit). Each
    input's report gets its own counts, from the batch's per-row duplicate flags."""

    def __init__(self, lander: Lander, batch_rows: int, on_errors: OnErrors | None):
        self.lander, self.batch_rows, self.on_errors = lander, batch_rows, on_errors
        self._reset()

    def _reset(self) -> None:
        self.tables: list[pa.Table] = []
        self.rejects: list[pa.Table] = []
        # (report, accepted rows, rejects) per added chunk, in order
        self.segments: list[tuple[IngestReport, int, pa.Table]] = []
        self.rows = 0

    def add(
        self,
        validated: Validated,
        locate: Locate,
        source: str,
        report: IngestReport,
    ) -> None:
        accepted, rejected = validated.accepted, validated.rejects
        if accepted.num_rows:
            column = pa.repeat(pa.scalar(source, pa.string()), accepted.num_rows)
            self.tables.append(accepted.append_column("source", column))
        if rejected.num_rows:  # column-wise: a million rejects cost what a million signals do
            prefix, base, suffix = locate
            number = pc.cast(pc.add(rejected.column("index"), base), pa.string())
            rejected = pa.table(
                {
                    "location": concat_text(prefix, number, suffix),
                    "reason": rejected.column("reason"),
                    "raw": as_text(rejected.column("raw")),
                    "source": pa.repeat(pa.scalar(source, pa.string()), rejected.num_rows),
                }
            )
            self.rejects.append(rejected)
        self.segments.append((report, accepted.num_rows, rejected))
        self.rows += accepted.num_rows + rejected.num_rows  # rejects count: bounded batches
        if self.rows >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.segments:
            return
        incoming = pa.concat_tables(self.tables) if self.tables else INCOMING_SCHEMA.empty_table()
        rejects = pa.concat_tables(self.rejects) if self.rejects else None
        segments = self.segments

        def done(result: LandResult) -> None:
            flags = result.duplicate_flags
            start, errors = 0, []
            for report, n, rejected in segments:
                dups = int(flags[start : start + n].sum()) if n else 0
                report.ingested += n - dups
                report.duplicates += dups
                report.failed += rejected.num_rows
                start += n
                if not rejected.num_rows:
                    continue
                errs = list(
                    zip(
                        rejected.column("location").to_pylist(),
                        rejected.column("reason").to_pylist(),
                        strict=True,
                    )
                )
                room = MAX_REPORT_ERRORS - len(report.errors)
                report.errors.extend(errs[: max(room, 0)])
                errors += errs
            if errors and self.on_errors:
                self.on_errors(errors)

        self.lander.submit(incoming, rejects, done)
        self._reset()


def as_text(raw: pa.Array) -> pa.Array:
    """Raw bytes as text, invalid UTF-8 replaced (U+FFFD) so that a reject is always kept."""
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array([v.decode("utf-8", errors="replace") for v in raw.to_pylist()], pa.string())


def ingest_signals(
    lake: Lake,
    signals: Iterable[dict[str, Any] | bytes],
    source: str = "python",
    batch_rows: int = 200_000,
) -> IngestReport:
    """The Python API: land signal dicts (or raw JSON bytes); returns the counts once durable."""
    report = IngestReport()
    batcher = Batcher(Lander(lake, background=False), batch_rows, None)
    docs = [s if isinstance(s, bytes) else encode_signal(s) for s in signals]
    batcher.add(validate(docs), (f"{source}[", 0, "]"), source, report)
    batcher.flush()
    return report


encoder = msgspec.json.Encoder(decimal_format="number")


def encode_signal(signal: dict[str, Any]) -> bytes:
    try:
        return encoder.encode(signal)
    except (TypeError, msgspec.EncodeError) as exc:
        return encoder.encode({"_unencodable": str(exc), "repr": repr(signal)[:1000]})
