"""What the lake raises: a lake of the earlier format, a batch that could not be written, a damaged
file."""

from __future__ import annotations

LEGACY_CATALOG = "_catalog"  # the LMDB catalog of the earlier format (`tally migrate`)


class LegacyLakeError(RuntimeError):
    """The lake still has the earlier format."""


class LandingError(RuntimeError):
    """A batch could not be written (nothing of it was kept or acknowledged)."""


class IntegrityError(RuntimeError):
    """A file the catalog lists is missing or not what was written."""
