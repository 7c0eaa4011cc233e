"""The lake's tables and what landing returns: the signal and reject schemas, a landed file's
entry, signal ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNALS = "signals"
REJECTS = "rejects"

SIGNAL_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("signal_id", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("event_name", pa.string()),
        ("customer_id", pa.string()),
        ("external_customer_id", pa.string()),
        ("product_id", pa.string()),
        ("external_product_id", pa.string()),
        ("customer_unit", pa.string()),
        ("data", pa.string()),
        ("idempotency_key", pa.string()),
        ("is_duplicate", pa.bool_()),
        ("duplicate_of", pa.string()),
        ("source", pa.string()),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("location", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)
# What a validated batch must carry before landing assigns ids, times and duplicate flags.
INCOMING_COLUMNS = [
    "timestamp",
    "event_name",
    "customer_id",
    "external_customer_id",
    "product_id",
    "external_product_id",
    "customer_unit",
    "data",
    "idempotency_key",
]


@dataclass(frozen=True)
class LandResult:
    """What one landing committed: the numbers the caller acknowledges."""

    ingested: int
    duplicates: int
    failed: int
    batch: int | None
    # Per accepted signal, in the order given to `land`: True where it was a duplicate.
    duplicate_flags: np.ndarray | None = None


@dataclass(frozen=True)
class LakeFile:
    """One live data file of a lake table. `path` is a local path or an `s3://` URL."""

    path: str
    kind: str
    date: str
    rows: int
    min_seq: int
    max_seq: int
    batch: int
    data_file: object = field(default=None, compare=False, repr=False)


def signal_id(seq: int) -> str:
    """The public id of the signal landed with sequence number `seq` (time-ordered, unique)."""
    return f"sig_{seq:016d}"


def signal_ids(seqs: pa.Array) -> pa.Array:
    padded = pc.utf8_lpad(pc.cast(seqs, pa.string()), 16, "0")
    return pc.binary_join_element_wise("sig_", padded, "")


def kind_of(path: str) -> str:
    """The lake table a landed file belongs to (by its location)."""
    return SIGNALS if f"/{SIGNALS}/data/" in path else REJECTS
