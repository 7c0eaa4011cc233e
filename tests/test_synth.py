"""The synthetic workload: deterministic, wire-shaped, realistic, dirty on request, fast."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

import pipelines.synth as synth_module
from pipelines.synth import (
    BAD_QUANTITIES,
    DIRT_KINDS,
    REJECTED,
    SynthResult,
    synth,
    write_config,
)

REPO = Path(__file__).resolve().parents[1]
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CONFIG_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
WIRE_KEYS = ["eventName", "customer", "attribution", "timestamp", "data", "idempotencyKey"]
DIRT_WEIGHTS = dict(zip(DIRT_KINDS, [0.12, 0.12, 0.10, 0.12, 0.20, 0.16, 0.12, 0.06], strict=True))


def read(result: SynthResult) -> list[tuple[str, str]]:
    """(file day, raw line) for every line of every file, in order."""
    out = []
    for path in result.signal_files:
        day = path.name.removeprefix("day-").removesuffix(".jsonl")
        text = path.read_text(encoding="utf-8")
        assert text == "" or text.endswith("\n")
        out += [(day, line) for line in text.splitlines()]
    return out


def reject_reason(sig: dict) -> str | None:
    """The rejection rules of docs/concepts.md, as the synthetic rejects exercise them."""
    if not isinstance(sig.get("eventName"), str) or not sig["eventName"]:
        return "missing_event_name"
    customer = sig.get("customer")
    if not isinstance(customer, dict) or not (
        customer.get("externalCustomerId") or customer.get("customerId")
    ):
        return "empty_customer"
    if "timestamp" in sig and not re.fullmatch(r".*T.*(Z|[+-]\d\d:\d\d)", sig["timestamp"]):
        return "timestamp_without_zone"
    if "data" in sig and not isinstance(sig["data"], dict):
        return "data_is_list"
    key = sig.get("idempotencyKey")
    if key is not None and (not isinstance(key, str) or len(key) > 256):
        return "long_idempotency_key"
    return None


def valid_quantity(value: object) -> bool:
    """The quantity rule of docs/concepts.md, for values parsed with exact decimals."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return False
    if isinstance(value, str):
        if not re.fullmatch(r"\d+(\.\d+)?", value):
            return False
        value = Decimal(value)
    number = Decimal(value)
    return number >= 0 and number < Decimal(10) ** 18 and -number.as_tuple().exponent <= 12


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synth(tmp_path_factory.mktemp("dirty"), signals=20_000, dirt=0.1)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synth(tmp_path_factory.mktemp("clean"), signals=20_000, dirt=0.0)


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a = synth(tmp_path / "a", signals=5_000, days=5, customers=4, seed=11)
    b = synth(tmp_path / "b", signals=5_000, days=5, customers=4, seed=11)
    c = synth(tmp_path / "c", signals=5_000, days=5, customers=4, seed=12)
    files = sorted(p.relative_to(a.config_dir.parent) for p in a.config_dir.parent.rglob("*.*"))
    assert len(files) == 6
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert a.counts == b.counts
    assert a.signal_files[1].read_bytes() != c.signal_files[1].read_bytes()


def test_small_chunks_still_deterministic_and_consistent(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(synth_module, "CHUNK", 997)
    a = synth(tmp_path / "a", signals=8_000, days=2, dirt=0.1)
    b = synth(tmp_path / "b", signals=8_000, days=2, dirt=0.1)
    assert [f.read_bytes() for f in a.signal_files] == [f.read_bytes() for f in b.signal_files]
    lines = read(a)
    assert len(lines) == a.signals == 8_000
    assert a.counts["dirt.duplicate"] == len(lines) - len({line for _, line in lines})
    # a file's own signals arrive in time order, chunk after chunk (resends and late ones aside)
    assert a.counts["dirt.late"] > 0 and len(a.signal_files) == 2
    seen: set[str] = set()
    for path in a.signal_files:
        stamps, lines = [], path.read_text(encoding="utf-8").splitlines()
        for line in lines:
            stamp = json.loads(line).get("timestamp", "")
            if line not in seen and stamp.startswith(path.name[4:14]) and stamp.endswith("Z"):
                stamps.append(stamp)
            seen.add(line)
        assert stamps == sorted(stamps) and len(stamps) > 0.9 * len(lines)


def test_counts_add_up(dirty: SynthResult) -> None:
    counts, lines = dirty.counts, read(dirty)
    assert dirty.signals == counts["signals"] == len(lines) == 20_000
    assert len(dirty.signal_files) == 14
    assert dirty.signal_files[0].name == "day-2026-11-01.jsonl"
    assert dirty.signal_files[-1].name == "day-2026-11-14.jsonl"
    assert dirty.config_dir.name == "config" and (dirty.config_dir / "company.yaml").is_file()
    kinds = sum(counts[f"dirt.{k}"] for k in DIRT_KINDS)
    assert kinds + counts["clean"] + counts["special"] == dirty.signals
    assert sum(counts[f"rejected.{r}"] for r in REJECTED) == counts["dirt.rejected"]
    assert sum(counts[f"bad_quantity.{b}"] for b in BAD_QUANTITIES) == counts["dirt.bad_quantity"]
    events = sum(v for k, v in counts.items() if k.startswith("event."))
    unnamed = counts["dirt.duplicate"] + counts["rejected.missing_event_name"]
    assert events + unnamed == dirty.signals
    assert counts["idempotency_keys"] == sum('"idempotencyKey"' in line for _, line in lines)


def test_every_line_is_json_in_the_wire_shape(clean: SynthResult) -> None:
    keys, customers, products = Counter(), Counter(), Counter()
    for day, line in read(clean):
        sig = json.loads(line)
        assert list(sig) == [k for k in WIRE_KEYS if k in sig]
        assert reject_reason(sig) is None
        assert set(sig["customer"]) == {"externalCustomerId"}
        assert set(sig["attribution"]) == {"externalProductId"}
        assert TS.fullmatch(sig["timestamp"]) and sig["timestamp"].startswith(day)
        assert isinstance(sig["data"], dict) and sig["data"]
        if "idempotencyKey" in sig:
            assert re.fullmatch(r"evt_[0-9a-f]{16}", sig["idempotencyKey"])
        keys.update(sig["data"].keys())
        customers[sig["customer"]["externalCustomerId"]] += 1
        products[sig["attribution"]["externalProductId"]] += 1
    n = clean.signals
    assert 0.8 * n < keys["external_user_id"] < n
    assert keys["external_user_id"] == keys["team"] == keys["department"]
    assert keys["model"] > 0.8 * n and keys["usage"] > 0 and keys["input.tokens"] > 0
    assert "externalUserId" not in keys and "Team" not in keys
    ranked = customers.most_common()
    assert ranked[0][0] == "cus_acme" and ranked[0][1] > 3 * ranked[-1][1]  # skewed
    assert set(products) == {"chatbot", "doc_processor", "outreach", "search_api"}


def test_no_dirt_means_clean(clean: SynthResult) -> None:
    counts = clean.counts
    assert all(counts[f"dirt.{k}"] == 0 for k in DIRT_KINDS) and counts["special"] == 0
    assert counts["clean"] == clean.signals
    lines = read(clean)
    assert len({line for _, line in lines}) == len(lines)
    keys = [json.loads(line).get("idempotencyKey") for _, line in lines]
    present = [k for k in keys if k]
    assert len(set(present)) == len(present) == counts["idempotency_keys"]
    assert 0.8 < len(present) / len(keys) < 0.9


def test_dirt_kinds_appear_as_counted_at_about_the_requested_share(dirty: SynthResult) -> None:
    seen: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    spelled_customers = set()
    for day, line in read(dirty):
        if line in first_seen:
            seen["duplicate"] += 1
            seen["duplicate_from_an_earlier_file"] += first_seen[line] < day
            assert '"idempotencyKey":"evt_' in line
            continue
        first_seen[line] = day
        sig = json.loads(line, parse_float=Decimal)
        reason = reject_reason(sig)
        if reason:
            seen["rejected"] += 1
            seen[f"rejected.{reason}"] += 1
            continue
        data, customer = sig["data"], sig["customer"]["externalCustomerId"]
        seen["unknown_customer"] += customer.startswith("cus_unknown_")
        seen["missing_attribution"] += sig.get("attribution") is None
        product = (sig.get("attribution") or {}).get("externalProductId", "")
        seen["unknown_product"] += product.startswith("prod_unknown_")
        if sig["eventName"] == "document_processed" and not valid_quantity(data.get("quantity")):
            seen["bad_quantity"] += 1
        lag = (date.fromisoformat(day) - date.fromisoformat(sig["timestamp"][:10])).days
        assert lag == 0 or 1 <= lag <= 5
        seen["late"] += lag > 0
        if "externalUserId" in data:
            seen["key_spelling"] += 1
            spelled_customers.add(customer)
            assert "Team" in data and "team" not in data and "external_user_id" not in data
        if "n" in data:
            seen["special"] += 1
            assert '"data":{"n":12345678901234567890,"x":0.1,"Team":"a","team":"b","u":"é"}' in line
    counts, n = dirty.counts, dirty.signals
    for kind in DIRT_KINDS:
        assert seen[kind] == counts[f"dirt.{kind}"], kind
        assert 0.6 < seen[kind] / (n * 0.1 * DIRT_WEIGHTS[kind]) < 1.4, kind
    assert 0.08 < sum(seen[k] for k in DIRT_KINDS) / n < 0.11
    for reason in REJECTED:
        assert seen[f"rejected.{reason}"] == counts[f"rejected.{reason}"] > 0, reason
    assert all(counts[f"bad_quantity.{b}"] > 0 for b in BAD_QUANTITIES)
    assert seen["duplicate_from_an_earlier_file"] > 0
    assert seen["special"] == counts["special"] == 1
    assert len(spelled_customers) == 1


def test_quantities_cover_integers_decimals_zeros_and_strings(clean: SynthResult) -> None:
    shapes: Counter[str] = Counter()
    for _, line in read(clean):
        if '"eventName":"document_processed"' in line:
            raw = re.search(r'"quantity":("[^"]*"|[^,}]*)', line).group(1)
            shapes[
                "string"
                if raw.startswith('"')
                else "decimal"
                if "." in raw
                else "zero"
                if raw == "0"
                else "integer"
            ] += 1
    assert all(shapes[s] > 10 for s in ("string", "decimal", "zero", "integer")), shapes


def test_traffic_follows_the_day_and_the_week(clean: SynthResult) -> None:
    sizes = [p.stat().st_size for p in clean.signal_files]
    weekdays = [date(2026, 11, 1 + i).weekday() for i in range(14)]
    weekend = [s for s, d in zip(sizes, weekdays, strict=True) if d >= 5]
    working = [s for s, d in zip(sizes, weekdays, strict=True) if d < 5]
    assert max(weekend) < min(working)
    hours = Counter(int(json.loads(line)["timestamp"][11:13]) for _, line in read(clean))
    assert hours[14] > 3 * hours[3]


def check_config(doc: dict) -> None:
    """The configuration's structural rules (the validator: pipelines/pricing/config)."""
    assert list(doc) == ["currencies", "customers", "products", "users", "seats", "grants"]
    t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731

    def dp(value: object) -> int:
        return -Decimal(str(value)).as_tuple().exponent

    def disjoint(spans: list[tuple[str | None, str | None]]) -> bool:
        ever, never = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
        bounds = sorted((t(a) if a else ever, t(b) if b else never) for a, b in spans)
        return all(lo < hi for lo, hi in bounds) and all(
            before[1] <= after[0] for before, after in itertools.pairwise(bounds)
        )

    def ids(items: list, key: str) -> set:
        values = [i[key] for i in items]
        assert all(isinstance(v, str) for v in values) and len(set(values)) == len(values)
        return set(values)

    currencies = ids(doc["currencies"], "key")
    customers = ids(doc["customers"], "external_id")
    ids(doc["products"], "external_id")
    users = {(u["customer"], u["external_id"]) for u in doc["users"]}
    assert len(users) == len(doc["users"]) and {c for c, _ in users} <= customers
    assert all(set(u["metadata"]) == {"team", "department"} for u in doc["users"])
    for product in doc["products"]:
        rules: dict[str, list] = {}
        for rule in product["pricing"]:
            assert rule["currency"] in currencies and Decimal(str(rule["credit_cost"])) >= 0
            assert dp(rule["credit_cost"]) <= 6
            for key in ("from", "until"):
                assert rule.get(key) is None or CONFIG_TS.fullmatch(rule[key])
            rules.setdefault(rule["event"], []).append((rule.get("from"), rule.get("until")))
        assert all(disjoint(spans) for spans in rules.values())
    seats = {s["id"]: s["customer"] for s in doc["seats"]}
    assert len(seats) == len(doc["seats"]) and set(seats.values()) <= customers
    by_user: dict[tuple, list] = {}
    for seat in doc["seats"]:
        spans = [(a["from"], a["until"]) for a in seat["assignments"]]
        assert disjoint(spans)
        for a in seat["assignments"]:
            assert (seat["customer"], a["user"]) in users
            by_user.setdefault((seat["customer"], a["user"]), []).append((a["from"], a["until"]))
    assert all(disjoint(spans) for spans in by_user.values())
    ids(doc["grants"], "id")
    for g in doc["grants"]:
        assert g["customer"] in customers and g["currency"] in currencies
        assert g["seat"] is None or seats[g["seat"]] == g["customer"]
        assert Decimal(str(g["amount"])) > 0 and dp(g["amount"]) <= 6
        assert CONFIG_TS.fullmatch(g["starts_at"])
        assert g.get("expires_at") is None or t(g["expires_at"]) > t(g["starts_at"])


@pytest.mark.parametrize("customers, days", [(6, 14), (1, 1), (2, 3), (25, 31)])
def test_config_is_valid(tmp_path: Path, customers: int, days: int) -> None:
    path = write_config(tmp_path, customers=customers, seed=3, start=date(2026, 2, 27), days=days)
    assert path == tmp_path / "company.yaml"
    check_config(yaml.safe_load(path.read_text(encoding="utf-8")))
    config = pytest.importorskip("pipelines.pricing.config")
    if hasattr(config, "load_config"):
        loaded = config.load_config(tmp_path)
        assert len(loaded.customers) == customers


def test_config_is_realistic(dirty: SynthResult) -> None:
    doc = yaml.safe_load((dirty.config_dir / "company.yaml").read_text(encoding="utf-8"))
    start, end = "2026-11-01T00:00:00Z", "2026-11-15T00:00:00Z"
    per_customer = Counter(u["customer"] for u in doc["users"])
    assert per_customer["cus_acme"] == 200 and min(per_customer.values()) >= 3
    acme = [s for s in doc["seats"] if s["customer"] == "cus_acme"]
    seated = {a["user"] for s in acme for a in s["assignments"]}
    assert 0.2 <= len(seated) / 200 <= 0.45
    moves = Counter(a["user"] for s in doc["seats"] for a in s["assignments"])
    assert max(moves.values()) == 2  # someone changes seat
    assert any(s["assignments"][-1]["until"] for s in doc["seats"])  # unassigned later
    assert any(len(s["assignments"]) > 1 for s in doc["seats"])  # handovers
    grants = doc["grants"]
    assert any(start < g.get("expires_at", "9") < end for g in grants if g["seat"] is None)
    assert any(start < g["starts_at"] < end and g["origin"] == "top_up" for g in grants)
    assert len({g.get("priority") for g in grants if g["seat"] is None}) > 1
    assert any(g["seat"] for g in grants) and any(g["currency"] == "api_calls" for g in grants)
    rules = {r["event"]: r for p in doc["products"] for r in p["pricing"]}
    assert "quantity_path" not in rules["email_sent"]
    assert rules["chat_message"]["quantity_path"] == "usage.tokens_k"
    events = [r["event"] for p in doc["products"] for r in p["pricing"]]
    assert events.count("document_processed") == 2  # a price change mid-period


def test_checked_in_sample_company_is_write_config_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, customers=6, seed=7, start=date(2026, 11, 1), days=14)
    checked_in = REPO / "data" / "config" / "company.yaml"
    assert checked_in.read_bytes() == path.read_bytes()
    assert checked_in.read_text(encoding="utf-8").startswith("# Sample company generated by `tally")
    demo = synth(tmp_path / "out")  # the defaults of `tally demo`
    assert (demo.config_dir / "company.yaml").read_bytes() == checked_in.read_bytes()
    assert 0.014 < sum(demo.counts[f"dirt.{k}"] for k in DIRT_KINDS) / demo.signals < 0.026


def test_progress_and_stale_files(tmp_path: Path) -> None:
    seen: list[int] = []
    synth(tmp_path, signals=3_000, days=5, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 3_000
    result = synth(tmp_path, signals=100, days=2)
    assert sorted(p.name for p in (tmp_path / "signals").iterdir()) == [
        p.name for p in result.signal_files
    ]
    assert synth(tmp_path / "empty", signals=0, days=2).counts["signals"] == 0
    with pytest.raises(ValueError):
        synth(tmp_path, dirt=1.5)


def test_a_large_workload_writes_every_signal(tmp_path: Path) -> None:
    """200,000 signals land in the files (the generation rate is the benchmark harness's)."""
    result = synth(tmp_path, signals=200_000)
    lines = sum(len(f.read_bytes().splitlines()) for f in result.signal_files)
    assert result.signals == 200_000 and lines == 200_000
