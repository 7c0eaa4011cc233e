"""`POST signals/bulk`: the same validation and landing as `tally ingest`, with group commit.

Requests are validated where they arrive; one committer thread lands whatever requests are waiting
as one `Lake.land` call (one set of files, one fsync'd index transaction), then acknowledges each
request with its own counts, and commits acknowledged groups to the Iceberg tables when no request
waits for IDLE_SECONDS (at least every SETTLE_SECONDS): many groups share one table commit, and
every reader publishes what is acknowledged before it reads. Compaction, which merges the small
files of many groups, waits for a pause too (at least every COMPACT_SECONDS under a steady
stream): done at every table commit it took about four times as long as the commit itself.
Concurrent clients share the cost of the fsyncs, and a request is answered only after its signals
are durable. Nothing is acknowledged that was not
committed; if landing fails, nothing of the group was committed (the index transaction is the
commit point) and every request in it gets a 503 the SDK retries.

With `ack_committed` (`tally serve --ack committed`) each group is also committed to the tables
before it is acknowledged: an Iceberg reader outside Tally sees every acknowledged signal at
once, at the cost of one table commit per group (docs/storage.md has the rates).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import msgspec
import pyarrow as pa

from pipelines.api.errors import ApiError
from pipelines.core.limits import MAX_DEPTH
from pipelines.landing.ingest import as_text
from pipelines.landing.lake import Lake
from pipelines.landing.validate import Validated, split_bulk, validate

MAX_GROUP_ROWS = 100_000
SETTLE_SECONDS = 1.0
COMPACT_SECONDS = 30.0
IDLE_SECONDS = 0.1
log = logging.getLogger(__name__)


class _Bulk(msgspec.Struct):
    signals: list[msgspec.Raw]


_decode_bulk = msgspec.json.Decoder(_Bulk).decode


def parse_bulk(body: bytes) -> Validated:
    """Split `{"signals": [...]}` into raw documents (bytes as sent) and validate them. A body
    nested too deeply for the decoder is split without recursion, so its good signals land and
    each too-deep one is rejected on its own."""
    try:
        docs = [bytes(raw) for raw in _decode_bulk(body).signals]
    except msgspec.ValidationError as exc:
        raise ApiError(
            400, f'the body must be {{"signals": [...]}}: {exc}', "bad_request"
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", "bad_request") from None
    except RecursionError:
        split = split_bulk(body)
        if split is None:
            raise ApiError(
                400,
                f'the body must be {{"signals": [{{...}}, ...]}} (and is nested over '
                f"{MAX_DEPTH} levels)",
                "bad_request",
            ) from None
        docs = split
    return validate(docs)


@dataclass
class Ack:
    ingested: int
    duplicates: int
    failed: int
    errors: list[dict]


@dataclass
class _Pending:
    validated: Validated
    request_id: str
    future: Future


class Committer:
    """Lands queued requests in groups on one thread; `submit` returns a future `Ack`."""

    def __init__(self, lake: Lake, ack_committed: bool = False):
        self.lake = lake
        self.ack_committed = ack_committed
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._lock = threading.Lock()
        self._settled = self._compacted = time.monotonic()
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="tally-committer", daemon=True)
        thread.start()
        return thread

    def submit(self, validated: Validated, request_id: str) -> Future:
        future: Future = Future()
        with self._lock:
            if not self._thread.is_alive():  # closed by an app's shutdown, used again (tests)
                self._thread = self._start()
            self._queue.put(_Pending(validated, request_id, future))
        return future

    def close(self) -> None:
        with self._lock:
            self._queue.put(None)
            self._thread.join()

    def _loop(self) -> None:
        unsettled = False
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS if unsettled else None)
            except queue.Empty:  # idle: publish what was acknowledged
                self._settle()
                unsettled = False
                continue
            if first is None:
                if unsettled:
                    self._settle()
                return
            unsettled = True
            group, rows = [first], first.validated.accepted.num_rows
            while rows < MAX_GROUP_ROWS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # closing: land what came before, then publish it all
                    self._commit(group)
                    self._settle()
                    return
                group.append(item)
                rows += item.validated.accepted.num_rows
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        rejects = [
            pa.table(
                {
                    "location": [f"http:{p.request_id}[{i}]" for i in p.validated.reject_index],
                    "reason": p.validated.rejects.column("reason"),
                    "raw": as_text(p.validated.rejects.column("raw")),
                }
            )
            for p in group
            if p.validated.rejects.num_rows
        ]
        try:
            result = self.lake.land(
                pa.concat_tables([p.validated.accepted for p in group]),
                pa.concat_tables(rejects) if rejects else None,
                source="http",
                tidy=False,  # compact after acknowledging: waiting requests form a bigger group
                # durable and indexed is acknowledged, one table commit for many groups; or,
                # with ack_committed, committed to the tables too
                publish=self.ack_committed,
            )
        except Exception as exc:  # noqa: BLE001 - every waiting request must be answered
            log.exception("landing a group of %d requests failed", len(group))
            error = ApiError(503, "signals could not be stored; retry", "unavailable", str(exc))
            for p in group:
                p.future.set_exception(error)
            return
        flags = result.duplicate_flags
        start = 0
        for p in group:
            n = p.validated.accepted.num_rows
            duplicates = int(flags[start : start + n].sum()) if flags is not None else 0
            start += n
            errors = [
                {"index": i, "reason": r}
                for i, r in zip(p.validated.reject_index, p.validated.reject_reason, strict=True)
            ]
            p.future.set_result(Ack(n - duplicates, duplicates, len(errors), errors))
        # Publish to the tables once no request came for IDLE_SECONDS, or every SETTLE_SECONDS
        # under a steady stream: many groups share one commit (readers publish what is
        # acknowledged before they read); compact at a pause, or every COMPACT_SECONDS.
        if time.monotonic() - self._settled > SETTLE_SECONDS:
            self._settle(idle=False)

    def _settle(self, idle: bool = True) -> None:
        compact = idle or time.monotonic() - self._compacted > COMPACT_SECONDS
        try:
            self.lake.settle(compact=compact)
        except Exception:  # noqa: BLE001 - acknowledged data is safe; the next settle retries
            log.exception("publishing after a group commit failed")
        self._settled = time.monotonic()
        if compact:
            self._compacted = self._settled
