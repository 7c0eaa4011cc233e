"""HTTP ingest rate of `tally serve` (figure 7 of `./dev.sh bench`; alone:
`.venv/bin/python -m benchmarks.http [--signals N] [--sdk-signals N] [--repeat R]`).

Starts the real server on a fresh home (loopback, a free port) and posts `POST /api/v2/signals/bulk`
in batches of 500 from 4 concurrent clients, two ways:
- pre-serialized bodies (the bytes are built before the clock starts), sent with httpx;
- the unmodified `paid-python` SDK (`signals.create_signals` with `Signal` models), as agents do.
Every request is acknowledged only after its signals are durable (fsync'd), so the rate is the
durable rate. Each figure is the median of `--repeat` runs, with min and max.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

TOKEN = "bench-token"
BATCH = 500
CLIENTS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tally-http-")) / "home"
        self.port = _free_port()
        env = {**os.environ, "TALLY_HOME": str(self.root), "TALLY_API_TOKENS": TOKEN}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "serve",
                "--port",
                str(self.port),
                "--run-every",
                "0",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}/api/v2"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/credits/currencies", timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode()) from None
                time.sleep(0.1)
        raise RuntimeError("tally serve did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.root.parent, ignore_errors=True)


def _signal(i: int) -> dict:
    return {
        "eventName": ("email_sent", "document_processed", "chat_message")[i % 3],
        "customer": {"externalCustomerId": f"cus_{i % 50:03d}"},
        "attribution": {"externalProductId": "agent"},
        "data": {"external_user_id": f"usr_{i % 997}", "team": f"team_{i % 7}", "quantity": i % 5},
        "idempotencyKey": f"http-bench-{i}",
    }


def _post_all(url: str, bodies: list[bytes]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}

    def worker(part: list[bytes]) -> None:
        with httpx.Client(headers=headers, timeout=60) as http:
            for body in part:
                r = http.post(url + "/signals/bulk", content=body)
                r.raise_for_status()
                assert r.json()["failed"] == 0

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(worker, [bodies[k::CLIENTS] for k in range(CLIENTS)]))


def _sdk_all(url: str, batches: list[list[dict]]) -> None:
    from paid import Paid
    from paid.types import Signal

    def worker(part: list[list[dict]]) -> None:
        paid = Paid(token=TOKEN, base_url=url)
        for batch in part:
            signals = [Signal.model_validate(s) for s in batch]
            sent = paid.signals.create_signals(signals=signals)
            assert sent.failed == 0

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(worker, [batches[k::CLIENTS] for k in range(CLIENTS)]))


def measure(signals: int, sdk_signals: int | None = None) -> dict[str, float]:
    """Signals/s over HTTP: pre-serialized bodies, then the SDK (on `sdk_signals`, default the
    same number: the SDK is the slow side), each on a fresh server."""
    out = {}
    for name, count in (("raw", signals), ("sdk", sdk_signals or signals)):
        n = max(BATCH * CLIENTS, count // BATCH * BATCH)
        batches = [[_signal(i) for i in range(b, b + BATCH)] for b in range(0, n, BATCH)]
        payload = (
            [json.dumps({"signals": b}).encode() for b in batches] if name == "raw" else batches
        )
        send = _post_all if name == "raw" else _sdk_all
        server = _Server()
        try:
            started = time.perf_counter()
            send(server.url, payload)
            out[name] = n / (time.perf_counter() - started)
        finally:
            server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=200_000)
    parser.add_argument("--sdk-signals", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [measure(args.signals, args.sdk_signals) for _ in range(args.repeat)]
    print(
        f"HTTP ingest: {args.signals:,} signals pre-serialized, {args.sdk_signals:,} through the "
        f"SDK; batches of {BATCH}, {CLIENTS} concurrent clients"
    )
    print("| client | median | min | max | unit |\n|---|---:|---:|---:|---|")
    for name in ("raw", "sdk"):
        values = [r[name] for r in runs]
        label = "pre-serialized bodies" if name == "raw" else "paid-python SDK"
        print(
            f"| {label} | {statistics.median(values):,.0f} | {min(values):,.0f} | "
            f"{max(values):,.0f} | signals/s |"
        )


if __name__ == "__main__":
    main()
