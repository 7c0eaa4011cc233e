"""The HTTP API's reference changes live in the config directory, in one file: `api.yaml`.

One store: the pipeline reads `config/*.yaml` and nothing else, so what the API creates (customers,
users, products and their pricing, currencies, grants, seat assignments) reaches the pipeline
exactly as an operator's YAML does.

Ownership, so that YAML and API never silently overwrite each other: every entity is owned by the
file that defines it. The API writes only `api.yaml`. It creates entities there and changes only
entities it owns; asked to change an entity defined in an operator's file it refuses
(`managed_in_file`) and names the file to edit. An operator who later defines an id that `api.yaml`
already defines gets the loader's duplicate-id error naming both files, and the pipeline does not
run on a half-merged configuration. Every change is validated against the whole directory
(`parse_config`) before `api.yaml` is replaced atomically (temp file, fsync, rename), so the API
can never write a configuration the pipeline rejects.

`api_records` (a section the config loader skips) holds what billing does not need: creation times
and the contact fields of the Paid model (email, phone, ...).
"""

from __future__ import annotations

import copy
import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from pipelines.api.errors import ApiError
from pipelines.core.clock import now
from pipelines.core.limits import MAX_CONFIG_FILE_BYTES
from pipelines.pricing.config import API_RECORDS, Config, ConfigError, load_config, parse_config
from pipelines.storage.files import fsync_dir, write_bytes_atomic

API_FILE = "api.yaml"
SECTIONS = (
    "currencies",
    "customers",
    "users",
    "products",
    "seats",
    "seat_assignments",
    "grants",
)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes exact JSON numbers (Decimal) as YAML floats with every digit, which the config
    loader reads back as the same Decimal."""


_Dumper.add_representer(
    Decimal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:float", str(value))
)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as the SDK writes it."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


class Store:
    """Read the configuration; change `api.yaml` under a lock shared by threads and processes."""

    def __init__(self, config_dir: Path):
        self.dir = Path(config_dir)
        self.path = self.dir / API_FILE
        self._lock = threading.Lock()
        self._parsed: dict[Path, tuple[tuple, Any]] = {}  # path -> (stat stamp, YAML document)

    def _yaml(self, path: Path) -> Any:
        """A YAML file's document, parsed again only when the file changed (by stat)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        self._parsed[path] = (stamp, doc)
        return doc

    def config(self) -> Config:
        if not any(self.dir.glob("*.yaml")):
            return Config()  # a new home, set up through the API only
        try:
            return load_config(self.dir)
        except ConfigError as exc:
            raise ApiError(
                500, "the configuration does not load", "config_invalid", exc.errors[0]
            ) from None

    def document(self) -> dict[str, Any]:
        """`api.yaml` as a document (shared and cached: copy it before changing it)."""
        doc: dict[str, Any] = self._yaml(self.path) or {}
        for section in SECTIONS:
            doc.setdefault(section, [])
        doc.setdefault(API_RECORDS, {})
        return doc

    def owner(self, section: str, doc: dict[str, Any], **match: str) -> str | None:
        """`api.yaml` if the API owns the entity, the defining file's name, or None if unknown."""

        def matches(entry: object) -> bool:
            return isinstance(entry, dict) and all(str(entry.get(k)) == v for k, v in match.items())

        if any(matches(e) for e in doc[section]):
            return API_FILE
        for path in sorted(self.dir.glob("*.yaml")):
            if path.name == API_FILE or path.name.startswith("."):
                continue
            other = self._yaml(path) or {}
            entries = (other.get(section) or []) if isinstance(other, dict) else []
            if any(matches(e) for e in entries):
                return path.name
        return None

    @contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """Yield `api.yaml` as a document to edit; validate everything, then replace the file."""
        with self._lock, open(self.dir / ".api.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = copy.deepcopy(self.document())
            before = copy.deepcopy(doc)
            yield doc
            if doc == before:
                return  # a replay or a no-op: nothing to write
            text = yaml.dump(
                {k: v for k, v in doc.items() if v},
                Dumper=_Dumper,
                sort_keys=False,
                allow_unicode=True,
            )
            sources = {
                p.name: p.read_text(encoding="utf-8")
                for p in self.dir.glob("*.yaml")
                if p.name != API_FILE and not p.name.startswith(".")
            }
            sources[API_FILE] = text
            size = len(text.encode())
            if size > MAX_CONFIG_FILE_BYTES:
                raise ApiError(
                    400,
                    f"the change would make config/{API_FILE} {size:,} bytes, over the "
                    f"{MAX_CONFIG_FILE_BYTES:,}-byte limit",
                    "config_too_large",
                )
            try:
                parse_config(sources)
            except ConfigError as exc:
                raise ApiError(
                    400,
                    "the change would make the configuration invalid",
                    "config_invalid",
                    exc.errors[0],
                ) from None
            write_bytes_atomic(text.encode(), self.path)
            fsync_dir(self.dir)


def managed_elsewhere(what: str, owner: str, status: int = 400) -> ApiError:
    return ApiError(
        status,
        f"{what} is defined in config/{owner}; change it there (the API only changes what it "
        f"created, in config/{API_FILE})",
        "managed_in_file",
    )


def record(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """The API's own record of an entity (created/updated times, Paid-only fields)."""
    records = doc[API_RECORDS]
    if key not in records:
        stamp = iso(now())
        records[key] = {"createdAt": stamp, "updatedAt": stamp}
    return records[key]
