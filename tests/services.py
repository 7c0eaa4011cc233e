"""Real servers for the shared-deployment tests: PostgreSQL 15, an S3 API (moto's standalone
server) and Redis (the Celery broker), started once per test session on free loopback ports and
stopped at its end.

Outside CI a machine without PostgreSQL's binaries skips those tests with the reason; CI sets
`TALLY_REQUIRE_SERVICES=1` (.ci/run installs PostgreSQL first), so there a missing server fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PG_BIN_DIRS = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin"]
BUCKET = "tally-test"


@dataclass
class Services:
    pg_uri: str
    s3_endpoint: str
    processes: list[subprocess.Popen]
    scratch: Path
    redis_url: str | None = None  # None: redis-server is not installed here

    def new_database(self, name: str) -> str:
        """Create database `name` (e.g. a Dagster instance of one test); its URL."""
        import psycopg2

        con = psycopg2.connect(self.pg_uri.replace("+psycopg2", ""))
        con.autocommit = True
        try:
            con.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.pg_uri.rsplit("/", 1)[0] + f"/{name}"

    def env(self, namespace: str) -> dict[str, str]:
        """The environment of a Tally process using the shared storage, in its own namespace."""
        return {
            "TALLY_CATALOG_URI": self.pg_uri,
            "TALLY_WAREHOUSE_URI": f"s3://{BUCKET}/{namespace}",
            "TALLY_CATALOG_NAMESPACE": namespace,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }

    def stop(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if (Path(d) / name).exists():
            return str(Path(d) / name)
    return shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def missing() -> str | None:
    """Why the servers cannot start here (None: they can)."""
    if not (_pg_bin("initdb") and _pg_bin("postgres")):
        return "PostgreSQL's initdb/postgres are not installed (apt-get install postgresql-15)"
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return "moto[server] is not installed (pip install -e '.[dev]')"
    return None


def start() -> Services:
    scratch = Path(tempfile.mkdtemp(prefix="tally-services-"))
    data = scratch / "pg"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(scratch, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        _as_postgres(
            [_pg_bin("initdb"), "-D", str(data), "-U", "tally", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    pg_port, s3_port = _free_port(), _free_port()
    postgres = subprocess.Popen(
        _as_postgres(
            [
                _pg_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(pg_port),
                "-h",
                "127.0.0.1",
                "-k",
                str(data),
                "-c",
                "fsync=on",
                "-c",
                "max_connections=200",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(scratch / "postgres.log", "wb"),  # noqa: SIM115 - the server owns it
    )
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=subprocess.DEVNULL,
        stderr=open(scratch / "moto.log", "wb"),  # noqa: SIM115
    )
    services = Services(
        pg_uri=f"postgresql+psycopg2://tally@127.0.0.1:{pg_port}/postgres",
        s3_endpoint=f"http://127.0.0.1:{s3_port}",
        processes=[postgres, moto],
        scratch=scratch,
    )
    redis = shutil.which("redis-server")
    if redis:
        redis_port = _free_port()
        services.processes.append(
            subprocess.Popen(
                [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
                stdout=open(scratch / "redis.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )
        services.redis_url = f"redis://127.0.0.1:{redis_port}/0"
    try:
        _wait_for(services)
    except Exception:
        services.stop()
        raise
    return services


def _wait_for(services: Services) -> None:
    import psycopg2

    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg2.connect(services.pg_uri.replace("+psycopg2", "")).close()
            urllib.request.urlopen(services.s3_endpoint, timeout=2).close()
            if services.redis_url:
                port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=services.s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
