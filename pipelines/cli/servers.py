"""The long-running processes: tally ui (the Dagster UI and its daemon) and tally serve (the
HTTP API)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import HomeOpt, app, fail, open_home, out


class Ack(StrEnum):
    """When `tally serve` acknowledges signals."""

    durable = "durable"
    committed = "committed"


@app.command()
def ui(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Start the Dagster UI and its daemon (schedule, sensor) on this home; Ctrl-C stops both."""
    import signal
    import subprocess
    import time

    h = open_home(home)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(_workspace(dagster_home))]
    cmd += ["-h", host, "-p", str(port)]
    out.print(f"Dagster UI on http://{host}:{port} for {h.root} (Ctrl-C to stop)")
    # Its own process group, so that stopping `tally ui` stops the webserver and the daemon.
    child = subprocess.Popen(cmd, cwd=dagster_home, start_new_session=True)
    stopping: list[float] = []

    def stop(signum, _frame) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            _signal_group(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while child.poll() is None:
        time.sleep(0.2)
        if stopping and time.monotonic() - stopping[0] > 15:  # asked nicely; now for sure
            _signal_group(child.pid, signal.SIGKILL)
    _signal_group(child.pid, signal.SIGKILL)  # anything of the group that outlived dagster dev
    code = child.returncode
    raise typer.Exit(0 if stopping or code == 0 else code)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _workspace(dagster_home: Path) -> Path:
    """A workspace naming the code location `tally` (the installed `pipelines` package)."""
    path = dagster_home / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: pipelines.definitions\n"
        "      location_name: tally\n"
    )
    return path


def _tokens(token_file: Path | None) -> list[str]:
    """API tokens from `--token-file` (one per line) and `$TALLY_API_TOKENS` (comma-separated)."""
    tokens = [t.strip() for t in os.environ.get("TALLY_API_TOKENS", "").split(",")]
    if token_file is not None:
        try:
            tokens += [line.strip() for line in token_file.read_text().splitlines()]
        except OSError as exc:
            raise fail(f"cannot read --token-file {token_file}: {exc.strerror}") from None
    tokens = [t for t in tokens if t and not t.startswith("#")]
    if not tokens:
        raise fail("no API tokens: set TALLY_API_TOKENS=tok1,tok2 or pass --token-file FILE")
    return tokens


@app.command()
def serve(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    token_file: Annotated[
        Path | None, typer.Option(help="File of bearer tokens, one per line.")
    ] = None,
    run_every: Annotated[
        float,
        typer.Option(help="Seconds between billing runs when something changed (0: never)."),
    ] = 60.0,
    max_body_mb: Annotated[int, typer.Option(help="Largest request body, in MiB.")] = 32,
    ack: Annotated[
        Ack,
        typer.Option(
            help="Acknowledge signals once durable (files and index fsync'd; in the tables within "
            "a second) or once committed to the Iceberg tables (slower)."
        ),
    ] = Ack.durable,
) -> None:
    """The Paid-compatible HTTP API: point `Paid(base_url="http://HOST:PORT/api/v2")` here."""
    from pipelines.api.app import create_app
    from pipelines.api.server import serve as serve_app

    h = open_home(home)
    tokens = _tokens(token_file)
    h.config_dir.mkdir(parents=True, exist_ok=True)
    application = create_app(
        h, tokens, max_body_mb << 20, run_every or None, ack_committed=ack is Ack.committed
    )
    runs = f"billing run every {run_every:g} s when needed" if run_every else "no billing runs"
    out.print(
        f"Tally API on http://{host}:{port}/api/v2 for {h.root} ({len(tokens)} token(s); {runs})",
        highlight=False,
    )
    serve_app(application, host, port)  # with read deadlines (pipelines/api/server.py)
