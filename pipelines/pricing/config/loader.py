"""Reading `<config_dir>/*.yaml` into a `Config`: YAML, scalar conversions, entries, the
cross-entry checks (the rules are in the package's docstring)."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import msgspec
import yaml

from pipelines.core.limits import (
    MAX_CONFIG_FILE_BYTES,
    MAX_DEPTH,
    MAX_ID,
    MAX_METADATA_BYTES,
    depth,
    window_problem,
)
from pipelines.pricing.config.model import (
    API_RECORDS,
    DEFAULT_HOT_KEYS,
    DEFAULT_PRIORITY,
    SECTIONS,
    Config,
    ConfigError,
    Currency,
    Customer,
    Grant,
    PricingRule,
    Product,
    Seat,
    SeatAssignment,
    User,
)
from pipelines.pricing.paths import PathError, format_path, parse_path

# --- YAML: numbers and times are kept as the text written, so nothing goes through a float ---


class _Int(str):
    """A YAML integer scalar, as written."""


class _Float(str):
    """A YAML float scalar, as written."""


class _Time(str):
    """A YAML timestamp scalar, as written."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when present
    """A SafeLoader that keeps numbers/timestamps as text and rejects duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


for _tag, _cls in (("int", _Int), ("float", _Float), ("timestamp", _Time)):
    _Loader.add_constructor(
        f"tag:yaml.org,2002:{_tag}", lambda load, node, cls=_cls: cls(load.construct_scalar(node))
    )


# --- scalar conversions: each returns the value or raises ValueError(problem) ---

_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_JSON_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?")
_SIX_DP = Decimal("0.000001")
_MAX_CREDITS = Decimal(10) ** 32
_JSON = msgspec.json.Encoder(decimal_format="number")


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(str(value)) if isinstance(value, str) else repr(value)


def _ident(value: object) -> str:
    if not isinstance(value, str) or isinstance(value, (_Float, _Time)):
        raise ValueError(f"must be a string, got {_show(value)} (quote it)")
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_ID:
        raise ValueError(f"is {len(value):,} characters, over the {MAX_ID} limit")
    return str(value)


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a plain decimal number")
    number = Decimal(value)
    if number.copy_abs() >= _MAX_CREDITS:
        raise ValueError(f"{_show(value)} is too large (at most 32 digits before the point)")
    with localcontext(prec=40):  # DECIMAL(38, 6) fits; the default 28 digits would not
        rounded = number.quantize(_SIX_DP)
    if rounded != number:
        raise ValueError(f"{_show(value)} has more than 6 decimal places")
    return rounded.copy_abs() if rounded == 0 else rounded


def _integer(value: object) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(f"must be an integer, got {_show(value)}")
    if not -(2**31) <= int(value) < 2**31:
        raise ValueError(f"{value} is out of range")
    return int(value)


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 time like 2026-01-01T00:00:00Z, got {_show(value)}")
    text = str(value)
    if _DATE.fullmatch(text):
        text += "T00:00:00Z"
    match = _DATETIME.fullmatch(text)
    if not match:
        raise ValueError(f"{_show(value)} is not an RFC 3339 time like 2026-01-01T00:00:00Z")
    if match.group(2) is None:
        raise ValueError(f"{_show(value)} has no time zone (add Z for UTC)")
    if match.group(1) and len(match.group(1)) > 6:
        raise ValueError(f"{_show(value)} is more precise than a microsecond")
    try:
        return datetime.fromisoformat(f"{text[:10]}T{text[11:]}".upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{_show(value)} is not a valid date and time") from None


def _start_time(value: object) -> datetime:
    """A start (grant starts_at, rule or assignment `from`): in [2000-01-01, now + 1 year)."""
    parsed = _time(value)
    problem = window_problem(parsed)
    if problem:
        raise ValueError(problem)
    return parsed


def _end_time(value: object) -> datetime:
    """An end (expires_at, `until`): at most 2100-01-01 (and after its start)."""
    parsed = _time(value)
    problem = window_problem(parsed, end=True)
    if problem:
        raise ValueError(problem)
    return parsed


def _json_value(value: object) -> object:
    """Metadata as JSON-ready Python: exact numbers, times as the text written."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {_show(key)} must be a string")
            out[str(key)] = _json_value(item)
        return out
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, _Int) and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if isinstance(value, _Float) and _JSON_NUMBER.fullmatch(value):
        return Decimal(value)
    if value is None or isinstance(value, (bool, str)):
        return value if value is None or isinstance(value, bool) else str(value)
    raise ValueError(f"unsupported value {value!r}")


def _metadata(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping, got {_show(value)}")
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_DEPTH} levels")
    converted = _json_value(value)
    size = len(_JSON.encode(converted))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size:,} bytes as JSON, over the {MAX_METADATA_BYTES:,}-byte limit")
    return converted  # type: ignore[return-value]


def _quantity_path(value: object) -> str:
    if not isinstance(value, str) or isinstance(value, (_Int, _Float, _Time)):
        raise ValueError(f"must be a string, got {_show(value)}")
    try:
        parse_path(value)
    except PathError as exc:
        raise ValueError(str(exc)) from None
    return str(value)


def format_time(value: datetime | None) -> str:
    """RFC 3339 in UTC with `Z` (`unbounded` for None), as used in messages."""
    if value is None:
        return "unbounded"
    fraction = f".{value.microsecond:06d}" if value.microsecond else ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


# --- entries ---


class _Entry:
    """One YAML mapping under validation; problems go to `errors` prefixed with `where`."""

    def __init__(
        self, errors: list[str], where: str, raw: object, allowed: tuple[str, ...]
    ) -> None:
        self.errors, self.where = errors, where
        self.raw: dict = raw if isinstance(raw, dict) else {}
        self.is_mapping = isinstance(raw, dict)
        if not self.is_mapping:
            self.fail(f"must be a mapping, got {_show(raw)}")
        for key in self.raw:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.fail(f"unknown key {str(key)!r}{tip}; allowed: {', '.join(allowed)}")

    def fail(self, problem: str) -> None:
        self.errors.append(f"{self.where}: {problem}")

    def get(self, key: str, convert: Callable[[object], Any], default: Any = None) -> Any:
        """The converted value of an optional field (`default` if absent, null or invalid)."""
        if self.raw.get(key) is None:
            return default
        try:
            return convert(self.raw[key])
        except ValueError as exc:
            self.fail(f"{key}: {exc}")
            return default

    def need(self, key: str, convert: Callable[[object], Any]) -> Any:
        """The converted value of a required field (None, reported, if absent or invalid)."""
        if self.raw.get(key) is None:
            if self.is_mapping:
                self.fail(f"missing required field {key!r}")
            return None
        return self.get(key, convert)

    def span(
        self, start: str, end: str, near: bool = True
    ) -> tuple[datetime | None, datetime | None] | None:
        """The optional half-open range [start, end); None (reported) if it is empty."""
        lo = self.get(start, _start_time if near else _end_time)  # `near`: within a year
        hi = self.get(end, _end_time)
        if lo is not None and hi is not None and hi <= lo:
            self.fail(f"{end} {format_time(hi)} is not after {start} {format_time(lo)}")
            return None
        return lo, hi


def _label(section: str, index: int, raw: object, keys: tuple[str, ...]) -> str:
    """`grants[3] (id=grant_007)`: the entry's position and its identifying fields."""
    shown = []
    for key in keys:
        value = raw.get(key) if isinstance(raw, dict) else None
        if isinstance(value, str):
            shown.append(f"{key}={value if value.isprintable() else repr(str(value))}")
    return f"{section}[{index}]" + (f" ({', '.join(shown)})" if shown else "")


def _list(value: object) -> list:
    if not isinstance(value, list):
        raise ValueError(f"must be a list, got {_show(value)}")
    return value


def _cost(value: object) -> Decimal:
    number = _decimal(value)
    if number < 0:
        raise ValueError(f"{_show(value)} is negative")
    return number


def _amount(value: object) -> Decimal:
    number = _decimal(value)
    if number <= 0:
        raise ValueError(f"{_show(value)} is not greater than 0")
    return number


@dataclass
class _Found:
    """Entities read so far, each with the place it was defined (for messages)."""

    currencies: list[tuple[str, Currency]] = field(default_factory=list)
    customers: list[tuple[str, Customer]] = field(default_factory=list)
    products: list[tuple[str, Product]] = field(default_factory=list)
    rules: list[tuple[str, PricingRule]] = field(default_factory=list)
    users: list[tuple[str, User]] = field(default_factory=list)
    seats: list[tuple[str, Seat]] = field(default_factory=list)
    assignments: list[tuple[str, SeatAssignment]] = field(default_factory=list)
    grants: list[tuple[str, Grant]] = field(default_factory=list)
    hot_keys: list[str] | None = None
    billing_start: date | None = None


def _read_billing(name: str, entries: object, errors: list[str], found: _Found) -> None:
    """`billing: {start_date: YYYY-MM-DD}`: the first UTC day that is billed."""
    if not isinstance(entries, dict) or set(entries) - {"start_date"}:
        errors.append(f"{name}: billing must be a mapping with the key start_date")
        return
    raw = entries.get("start_date")
    if raw is None:
        return
    try:
        found.billing_start = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
    except ValueError:
        errors.append(f"{name}: billing: start_date {raw!r} is not a date (YYYY-MM-DD)")
        return
    if isinstance(found.billing_start, datetime):
        errors.append(f"{name}: billing: start_date must be a date (YYYY-MM-DD), not a time")


def _read_hot_keys(name: str, entries: list, errors: list[str], found: _Found) -> None:
    """`hot_keys: [external_user_id, team, ...]`: data paths (docs/concepts.md)."""
    keys = found.hot_keys if found.hot_keys is not None else []
    for index, raw in enumerate(entries):
        if not isinstance(raw, str) or not raw:
            errors.append(f"{name}: hot_keys[{index}]: a hot key must be a data path string")
            continue
        try:
            canonical = format_path(parse_path(raw))
        except PathError as exc:
            errors.append(f"{name}: hot_keys[{index}]: {exc}")
            continue
        if canonical not in (format_path(parse_path(k)) for k in keys):
            keys.append(raw)
    found.hot_keys = keys


def _read_currency(e: _Entry, found: _Found) -> None:
    key = e.need("key", _ident)
    name = e.get("name", _ident, key)
    if key is not None:
        found.currencies.append((e.where, Currency(key, name)))


def _read_customer(e: _Entry, found: _Found) -> None:
    cid = e.need("external_id", _ident)
    name, metadata = e.get("name", _ident, cid), e.get("metadata", _metadata, {})
    if cid is not None:
        found.customers.append((e.where, Customer(cid, name, metadata)))


def _read_product(e: _Entry, found: _Found) -> None:
    pid = e.need("external_id", _ident)
    name, metadata = e.get("name", _ident, pid), e.get("metadata", _metadata, {})
    for index, raw in enumerate(e.get("pricing", _list, [])):
        where = f"{e.where}: {_label('pricing', index, raw, ('event',))}"
        r = _Entry(e.errors, where, raw, _RULE_KEYS)
        event, currency = r.need("event", _ident), r.need("currency", _ident)
        cost, path = r.need("credit_cost", _cost), r.get("quantity_path", _quantity_path)
        span = r.span("from", "until")
        if None not in (pid, event, currency, cost, span):
            found.rules.append((where, PricingRule("", pid, event, currency, cost, path, *span)))
    if pid is not None:
        found.products.append((e.where, Product(pid, name, metadata)))


def _read_user(e: _Entry, found: _Found) -> None:
    cid, uid = e.need("customer", _ident), e.need("external_id", _ident)
    name, metadata = e.get("name", _ident, uid), e.get("metadata", _metadata, {})
    if cid is not None and uid is not None:
        found.users.append((e.where, User(cid, uid, name, metadata)))


def _read_seat(e: _Entry, found: _Found) -> None:
    sid, cid = e.need("id", _ident), e.need("customer", _ident)
    for index, raw in enumerate(e.get("assignments", _list, [])):
        where = f"{e.where}: {_label('assignments', index, raw, ('user',))}"
        a = _Entry(e.errors, where, raw, ("user", "from", "until"))
        uid, span = a.need("user", _ident), a.span("from", "until", near=False)
        if sid is not None and cid is not None and uid is not None and span is not None:
            found.assignments.append((where, SeatAssignment(sid, uid, *span)))
    if sid is not None and cid is not None:
        found.seats.append((e.where, Seat(sid, cid)))


def _read_seat_assignment(e: _Entry, found: _Found) -> None:
    """An assignment kept apart from its seat's entry (e.g. made through the HTTP API)."""
    sid, uid = e.need("seat", _ident), e.need("user", _ident)
    span = e.span("from", "until", near=False)
    if sid is not None and uid is not None and span is not None:
        found.assignments.append((e.where, SeatAssignment(sid, uid, *span)))


def _read_grant(e: _Entry, found: _Found) -> None:
    gid, cid = e.need("id", _ident), e.need("customer", _ident)
    currency, amount = e.need("currency", _ident), e.need("amount", _amount)
    starts = e.need("starts_at", _start_time)
    seat, expires = e.get("seat", _ident), e.get("expires_at", _end_time)
    priority, origin = e.get("priority", _integer, DEFAULT_PRIORITY), e.get("origin", _ident)
    if starts is not None and expires is not None and expires <= starts:
        e.fail(f"expires_at {format_time(expires)} is not after starts_at {format_time(starts)}")
        return
    if None not in (gid, cid, currency, amount, starts):
        grant = Grant(gid, cid, seat, currency, amount, starts, expires, priority, origin)
        found.grants.append((e.where, grant))


_RULE_KEYS = ("event", "currency", "credit_cost", "quantity_path", "from", "until")
_READERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[_Entry, _Found], None]]] = {
    # section: (fields that label an entry in messages, allowed fields, reader)
    "currencies": (("key",), ("key", "name"), _read_currency),
    "customers": (("external_id",), ("external_id", "name", "metadata"), _read_customer),
    "products": (("external_id",), ("external_id", "name", "metadata", "pricing"), _read_product),
    "users": (
        ("customer", "external_id"),
        ("customer", "external_id", "name", "metadata"),
        _read_user,
    ),
    "seats": (("id",), ("id", "customer", "assignments"), _read_seat),
    "seat_assignments": (
        ("seat", "user"),
        ("seat", "user", "from", "until"),
        _read_seat_assignment,
    ),
    "grants": (
        ("id",),
        (
            "id",
            "customer",
            "seat",
            "currency",
            "amount",
            "starts_at",
            "expires_at",
            "priority",
            "origin",
        ),
        _read_grant,
    ),
}


def _read_source(name: str, text: str, errors: list[str], found: _Found) -> None:
    """Parse one YAML file's text and read its sections into `found`."""
    try:
        document = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark else ""
        problem = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        problem = " ".join((problem or "invalid YAML").split())
        errors.append(f"{name}: {line}YAML syntax error: {problem}")
        return
    except yaml.YAMLError as exc:
        errors.append(f"{name}: YAML syntax error: {' '.join(str(exc).split())}")
        return
    if document is None:
        return
    if not isinstance(document, dict):
        errors.append(f"{name}: the top level must map section names ({', '.join(SECTIONS)})")
        return
    for section, entries in document.items():
        if section == API_RECORDS:
            continue  # the HTTP API's own bookkeeping (pipelines/api/store.py); not billing data
        if section == "billing":
            _read_billing(name, entries, errors, found)
            continue
        if section not in _READERS and section != "hot_keys":
            hint = difflib.get_close_matches(str(section), SECTIONS, n=1)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            errors.append(f"{name}: unknown section {str(section)!r}{tip}")
            continue
        if entries is None:
            continue
        if not isinstance(entries, list):
            errors.append(f"{name}: {section} must be a list of entries, got {_show(entries)}")
            continue
        if section == "hot_keys":
            _read_hot_keys(name, entries, errors, found)
            continue
        label_keys, allowed, reader = _READERS[section]
        for index, raw in enumerate(entries):
            where = f"{name}: {_label(section, index, raw, label_keys)}"
            reader(_Entry(errors, where, raw, allowed), found)


# --- cross-entry checks ---

_Span = tuple[str, datetime | None, datetime | None]


def _unique(errors: list[str], items: list, key: Callable, what: Callable[[Any], str]) -> dict:
    """Index `items` by `key`, reporting every repeat of a key."""
    first: dict = {}
    for where, item in items:
        if key(item) in first:
            errors.append(f"{where}: duplicate {what(item)}, first at {first[key(item)][0]}")
        else:
            first[key(item)] = (where, item)
    return {k: item for k, (_, item) in first.items()}


def _start(start: datetime | None) -> tuple[bool, datetime]:
    """Sort key of a range start: unbounded (None) first."""
    return (start is not None, start or datetime.min.replace(tzinfo=UTC))


def _check_overlaps(errors: list[str], groups: dict[Any, list[_Span]], what: str) -> None:
    """Report spans of one group that overlap (ranges are half-open, None is unbounded)."""
    for group, spans in groups.items():
        reach: _Span | None = None  # the span seen so far that ends last
        for span in sorted(spans, key=lambda s: _start(s[1])):
            if reach is not None and (reach[2] is None or span[1] is None or reach[2] > span[1]):
                errors.append(
                    f"{span[0]}: {what.format(group)} [{format_time(span[1])}, "
                    f"{format_time(span[2])}) overlaps [{format_time(reach[1])}, "
                    f"{format_time(reach[2])}) at {reach[0]}"
                )
            if reach is None or (reach[2] is not None and (span[2] is None or span[2] > reach[2])):
                reach = span


def _group(items: list[tuple[str, Any]], key: Callable) -> dict[Any, list[_Span]]:
    """The validity ranges of `items` (rules or assignments) grouped by `key`."""
    groups: dict[Any, list[_Span]] = {}
    for where, item in items:
        groups.setdefault(key(item), []).append((where, item.valid_from, item.valid_until))
    return groups


def _check(found: _Found, errors: list[str]) -> None:
    """Uniqueness, references and overlaps across all files."""
    currencies = _unique(errors, found.currencies, lambda c: c.key, lambda c: f"currency {c.key!r}")
    customers = _unique(
        errors, found.customers, lambda c: c.external_id, lambda c: f"customer {c.external_id!r}"
    )
    _unique(errors, found.products, lambda p: p.external_id, lambda p: f"product {p.external_id!r}")
    users = _unique(
        errors,
        found.users,
        lambda u: (u.customer_id, u.external_id),
        lambda u: f"user {u.external_id!r} of customer {u.customer_id!r}",
    )
    seats = _unique(errors, found.seats, lambda s: s.id, lambda s: f"seat {s.id!r}")
    _unique(errors, found.grants, lambda g: g.id, lambda g: f"grant {g.id!r}")

    def known(where: str, kind: str, value: str, index: dict) -> bool:
        if value not in index:
            errors.append(f"{where}: unknown {kind} {value!r}")
        return value in index

    for where, item in found.users + found.seats:
        known(where, "customer", item.customer_id, customers)
    for where, rule in found.rules:
        known(where, "currency", rule.currency, currencies)
    found.assignments = [
        (where, a) for where, a in found.assignments if known(where, "seat", a.seat_id, seats)
    ]
    for where, assignment in found.assignments:
        customer = seats[assignment.seat_id].customer_id
        if customer in customers and (customer, assignment.user_id) not in users:
            owners = sorted(c for c, u in users if u == assignment.user_id)
            errors.append(
                f"{where}: user {assignment.user_id!r} belongs to customer {owners[0]!r}, "
                f"not to the seat's customer {customer!r}"
                if owners
                else f"{where}: unknown user {assignment.user_id!r} of customer {customer!r}"
            )
    for where, grant in found.grants:
        known(where, "customer", grant.customer_id, customers)
        known(where, "currency", grant.currency, currencies)
        if grant.seat_id is not None and known(where, "seat", grant.seat_id, seats):
            owner = seats[grant.seat_id].customer_id
            if owner != grant.customer_id:
                errors.append(
                    f"{where}: seat {grant.seat_id!r} belongs to customer {owner!r}, "
                    f"not to the grant's customer {grant.customer_id!r}"
                )

    by_rule = _group(found.rules, lambda r: (r.product_id, r.event))
    by_seat = _group(found.assignments, lambda a: a.seat_id)
    by_user = _group(found.assignments, lambda a: (seats[a.seat_id].customer_id, a.user_id))
    _check_overlaps(errors, by_rule, "pricing rule for event {0[1]!r}")
    _check_overlaps(errors, by_seat, "assignment of seat {0!r}")
    _check_overlaps(errors, by_user, "assignment of user {0[1]!r}")


def _build(found: _Found) -> Config:
    """The Config of validated entities, everything sorted by id (rules and assignments by time)."""
    rules: dict[str, list[PricingRule]] = {}
    ordered = sorted((r for _, r in found.rules), key=lambda r: (r.event, _start(r.valid_from)))
    counts: dict[tuple[str, str], int] = {}
    for rule in ordered:
        n = counts[rule.product_id, rule.event] = counts.get((rule.product_id, rule.event), 0) + 1
        rule_id = f"{rule.product_id}:{rule.event}:{n}"
        rules.setdefault(rule.product_id, []).append(dataclasses.replace(rule, rule_id=rule_id))
    assignments: dict[str, list[SeatAssignment]] = {}
    for _, a in sorted(found.assignments, key=lambda x: _start(x[1].valid_from)):
        assignments.setdefault(a.seat_id, []).append(a)
    return Config(
        currencies=tuple(sorted((c for _, c in found.currencies), key=lambda c: c.key)),
        customers=tuple(sorted((c for _, c in found.customers), key=lambda c: c.external_id)),
        products=tuple(
            dataclasses.replace(p, pricing=tuple(rules.get(p.external_id, ())))
            for p in sorted((p for _, p in found.products), key=lambda p: p.external_id)
        ),
        users=tuple(
            sorted((u for _, u in found.users), key=lambda u: (u.customer_id, u.external_id))
        ),
        seats=tuple(
            dataclasses.replace(s, assignments=tuple(assignments.get(s.id, ())))
            for s in sorted((s for _, s in found.seats), key=lambda s: s.id)
        ),
        grants=tuple(sorted((g for _, g in found.grants), key=lambda g: g.id)),
        hot_keys=DEFAULT_HOT_KEYS if found.hot_keys is None else tuple(found.hot_keys),
        billing_start=found.billing_start,
    )


def parse_config(sources: dict[str, str]) -> Config:
    """Validate YAML texts keyed by file name (read in sorted name order) into a Config."""
    errors: list[str] = []
    found = _Found()
    for name in sorted(sources):
        _read_source(name, sources[name], errors, found)
    _check(found, errors)
    if errors:
        raise ConfigError(errors)
    return _build(found)


def load_config(config_dir: Path) -> Config:
    """Load `<config_dir>/*.yaml`; raise ConfigError naming file, entry and problem."""
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        problem = "is not a directory" if config_dir.exists() else "does not exist"
        raise ConfigError([f"config directory {config_dir} {problem}"])
    files = [p for p in config_dir.glob("*.yaml") if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise ConfigError([f"config directory {config_dir} has no *.yaml files"])
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    cached = _CACHE.get(config_dir.resolve())
    if cached is not None and cached[0] == stamp:
        return cached[1]
    sources: dict[str, str] = {}
    for path in files:
        size = path.stat().st_size
        if size > MAX_CONFIG_FILE_BYTES:
            raise ConfigError(
                [f"{path.name}: {size:,} bytes, over the {MAX_CONFIG_FILE_BYTES:,}-byte limit"]
            )
        try:
            sources[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path.name}: cannot read: {' '.join(str(exc).split())}"]) from None
    config = parse_config(sources)
    _CACHE[config_dir.resolve()] = (stamp, config)
    return config


# A process loads the same unchanged directory many times (planning, assets, checks): parse once.
_CACHE: dict[Path, tuple[tuple, Config]] = {}
