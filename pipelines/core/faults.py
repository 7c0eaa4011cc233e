"""Deterministic fault injection for the crash tests (docs/operations.md).

`TALLY_FAULT=<point>[,<point>...]` makes the process die where it reaches a named point, at once
and without cleanup (`os._exit(137)`, what `kill -9` does); `enospc@<point>` raises "No space left
on device" there instead. Unset, a point costs one dictionary lookup.

Points: `land.files-written` (a landing's files are durable, its index not committed),
`land.indexed` (the index is committed, the tables not), `land.committed` (the tables are
committed, the intent not cleared), `land.write` (before each file is written),
`write` (any other file Tally writes: its temporary file is complete, not yet renamed),
`publish.outputs` (before the engine outputs' table commits), `publish.warehouse` (the new
warehouse file is complete, not yet renamed over the published one).
"""

from __future__ import annotations

import errno
import os

FAULT_ENV = "TALLY_FAULT"


def point(name: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        if item == name:
            os._exit(137)
        if item == f"enospc@{name}":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
