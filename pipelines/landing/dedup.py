"""First copy wins, forever: which signals of a batch repeat an idempotency key seen before (in
history, through the index, or earlier in the same batch), and which keys are new to the index."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.landing.schema import signal_ids

if TYPE_CHECKING:
    import polars as pl

    from pipelines.landing.index import Index

SMALL_BATCH = 20_000  # rows up to which duplicates are found with plain lists (HTTP requests)


def idem_key(key: str) -> bytes:
    """The catalog key of an idempotency key.

    LMDB keys are 1..511 bytes: keys up to 400 UTF-8 bytes are stored as `k<key>`, longer ones by
    SHA-256 digest as `h<digest>` (the prefixes keep the two spaces apart, and allow "").
    """
    raw = key.encode()
    return b"k" + raw if len(raw) <= 400 else b"h" + hashlib.sha256(raw).digest()


def _packed_keys(keys: pl.Expr) -> pl.Expr:
    """`idem_key` for a column, vectorized (digests only for the rare long keys)."""
    import polars as pl  # only landing needs it: readers start faster without

    short = pl.concat_str(pl.lit("k"), keys).cast(pl.Binary)
    return (
        pl.when(keys.str.len_bytes() <= 400)
        .then(short)
        .otherwise(keys.map_elements(idem_key, return_dtype=pl.Binary))
    )


def flag_duplicates(index: Index, table: pa.Table) -> tuple[pa.Table, list[tuple[bytes, int]]]:
    """First received wins, forever: flag later copies; return the new keys to index."""
    small = table.num_rows <= SMALL_BATCH
    dup_of, new_keys = (_duplicates_small if small else _duplicates_large)(index, table)
    n = table.num_rows
    if dup_of is None:
        return table.set_column(
            table.schema.get_field_index("is_duplicate"),
            "is_duplicate",
            pa.array(np.zeros(n, dtype=bool)),
        ), new_keys
    dup_arr = pa.array(dup_of, pa.int64())
    is_dup = dup_arr.is_valid()
    ids = pc.if_else(is_dup, signal_ids(pc.fill_null(dup_arr, 0)), pa.scalar(None, pa.string()))
    table = table.set_column(table.schema.get_field_index("is_duplicate"), "is_duplicate", is_dup)
    table = table.set_column(table.schema.get_field_index("duplicate_of"), "duplicate_of", ids)
    return table, new_keys


def _duplicates_small(
    index: Index, table: pa.Table
) -> tuple[list[int | None] | None, list[tuple[bytes, int]]]:
    """Per-row lists: for the small batches of HTTP requests, cheaper than a DataFrame."""
    keys = table["idempotency_key"].to_pylist()
    seq0 = table["seq"][0].as_py() if table.num_rows else 0
    first: dict[bytes, int] = {}
    dup_of: list[int | None] = [None] * len(keys)
    any_dup = False
    for i, key in enumerate(keys):
        if key is None:
            continue
        packed = idem_key(key)
        if packed in first:
            dup_of[i], any_dup = first[packed], True
        else:
            first[packed] = seq0 + i  # seqs are consecutive in a stamped batch
    ordered = sorted(first)
    history = index.history(ordered)
    if history:
        any_dup = True
        for i, key in enumerate(keys):
            if key is not None:
                dup_of[i] = history.get(idem_key(key), dup_of[i])
    new_keys = [(k, first[k]) for k in ordered if k not in history]
    return (dup_of if any_dup else None), new_keys


def _duplicates_large(
    index: Index, table: pa.Table
) -> tuple[list[int | None] | None, list[tuple[bytes, int]]]:
    """Vectorized in Polars for large batches (files); the few duplicates resolved in Python."""
    import polars as pl

    keyed = pl.from_arrow(table.select(["seq", "idempotency_key"])).with_columns(
        packed=_packed_keys(pl.col("idempotency_key"))
    )
    first_in_batch = pl.col("packed").is_not_null() & pl.col("packed").is_first_distinct()
    first = keyed.filter(first_in_batch).select("packed", "seq").sort("packed")
    packed = first["packed"].to_list()
    history = index.history(packed)
    seqs = first["seq"].to_list()
    new_keys = [(k, s) for k, s in zip(packed, seqs, strict=True) if k not in history]
    dup_mask = keyed.select(
        pl.col("packed").is_not_null() & (~first_in_batch | pl.col("packed").is_in(list(history)))
    ).to_series()
    if not dup_mask.any():
        return None, new_keys
    in_batch = dict(zip(packed, seqs, strict=True))
    dup_of: list[int | None] = [None] * table.num_rows
    rows = keyed.with_row_index("row").filter(dup_mask)
    for row, key in zip(rows["row"].to_list(), rows["packed"].to_list(), strict=True):
        dup_of[row] = history.get(key, in_batch[key])
    return dup_of, new_keys
