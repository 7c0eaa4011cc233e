"""The lake's tables and what landing returns: the signal and reject schemas, a landed file's
entry, signal ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNALS = "signals"
KEY_SPACE = 1 << 16  # shard keys are 0..65535
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
        # the customer's shard key (pipelines/billing/shards.py); files are sorted by it
        ("shard_key", pa.int32()),
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
    keyed: bool = True  # a signal file with its rows' shard keys (not one from before them)
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


def shard_key(customer: str | None) -> int:
    """A customer id's shard key: the first 2 bytes of its SHA-256 (0 without a customer)."""
    if customer is None:
        return 0
    return int.from_bytes(hashlib.sha256(customer.encode()).digest()[:2], "big")


def shard_keys(customers: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`shard_key` of each of `customers` (int32), hashing each distinct id once."""
    if isinstance(customers, pa.ChunkedArray):
        customers = customers.combine_chunks()
    encoded = pc.dictionary_encode(customers)
    keys = pa.array([shard_key(c) for c in encoded.dictionary.to_pylist()], pa.int32())
    return pc.fill_null(keys.take(encoded.indices), 0)
