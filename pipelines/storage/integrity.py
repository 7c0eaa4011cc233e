"""Checking files against the sizes and checksums recorded when they were written."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.storage.objects import Objects


def verify_files(index, files: list[tuple[str, int]], objects: Objects, deep: bool) -> list[str]:
    """`Lake.verify` for (path, size the catalog records) pairs: size always; the checksum when
    `deep`, or when a local file's modification time is not the one recorded."""
    recorded = index.sums([p for p, _ in files])
    problems = []
    for path, size in files:
        found = objects.stat_of(path)
        if found is None:
            problems.append(f"{path}: missing")
            continue
        actual, mtime_ns = found
        if actual != size:
            problems.append(f"{path}: {actual:,} bytes, the catalog records {size:,}")
            continue
        known = recorded.get(path)
        if known is None:
            continue
        changed = mtime_ns is not None and mtime_ns != known[1]
        if (deep or changed) and objects.digest_of(path) != known[2]:
            problems.append(f"{path}: its content changed since it was written (checksum)")
    return problems
