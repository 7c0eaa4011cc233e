"""Rejecting is as cheap as landing: `python -m benchmarks.rejects --signals 2000000`.

Writes N well-formed signals to one JSONL file and the same N signals with every timestamp
spelled `2026-10-01 00:00:00+00` (no `T`, a zone without minutes: not RFC 3339) to another, then
times `tally ingest` of each into a fresh home (`--repeat` times) and prints the wall time and
peak RSS of both, their ratios and whether they meet the target: rejecting all N within 2x the
time and 1.5x the memory of landing them (every rejected line is printed to stderr, as the CLI
does, and kept with its reason in the lake's rejects area).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import WORK, tally

TIME_RATIO, RSS_RATIO = 2.0, 1.5


def write_pair(n: int, out: Path) -> tuple[Path, Path]:
    """(good, bad) JSONL files of the same `n` signals, cached under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    good, bad = out / f"good-{n}.jsonl", out / f"bad-{n}.jsonl"
    if good.exists() and bad.exists():
        return good, bad
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=30)
    with open(good, "w") as g, open(bad, "w") as b:
        for i in range(n):
            at = start + timedelta(seconds=i * 30 * 86400 // max(n, 1))
            base = {
                "eventName": ("email_sent", "document_processed", "chat_message")[i % 3],
                "customer": {"externalCustomerId": f"cus_{i % 97:03d}"},
                "attribution": {"externalProductId": "agent"},
                "data": {"quantity": i % 11, "team": f"team_{i % 13}", "user": f"u{i % 1009}"},
                "idempotencyKey": f"key-{i}",
            }
            stamp = at.strftime("%Y-%m-%dT%H:%M:%S")
            g.write(json.dumps({**base, "timestamp": stamp + "Z"}) + "\n")
            b.write(json.dumps({**base, "timestamp": stamp.replace("T", " ") + "+00"}) + "\n")
    return good, bad


def measure(n: int, repeat: int = 1, work: Path = WORK) -> dict:
    good, bad = write_pair(n, work / "rejects")
    runs: dict[str, list[tuple[float, int]]] = {"good": [], "bad": []}
    for _ in range(repeat):
        for kind, path in (("good", good), ("bad", bad)):
            home = work / f"rejects-home-{kind}"
            shutil.rmtree(home, ignore_errors=True)
            wall, rss, out = tally(home, "ingest", str(path))
            expected = f"ingested {n:,}" if kind == "good" else f"failed {n:,}"
            if expected not in out:
                raise RuntimeError(f"{kind}: expected {expected!r}, got {out.strip()!r}")
            runs[kind].append((wall, rss))
            print(f"{kind}: {n:,} signals in {wall:.1f} s, peak RSS {rss / 1e9:.2f} GB", flush=True)
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    rss = {k: statistics.median(r for _, r in v) for k, v in runs.items()}
    result = {
        "signals": n,
        "land_s": round(wall["good"], 2),
        "reject_s": round(wall["bad"], 2),
        "land_rss_gb": round(rss["good"] / 1e9, 3),
        "reject_rss_gb": round(rss["bad"] / 1e9, 3),
        "time_ratio": round(wall["bad"] / wall["good"], 2),
        "rss_ratio": round(rss["bad"] / rss["good"], 2),
    }
    result["ok"] = result["time_ratio"] <= TIME_RATIO and result["rss_ratio"] <= RSS_RATIO
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    result = measure(args.signals, args.repeat, args.work)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
