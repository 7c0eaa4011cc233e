"""The `tally` command: thin wrappers over the stage packages, with progress and one-line errors.

The commands live in the modules beside this one, by what they are for; importing them registers
them on the one Typer app (`pipelines.cli.common.app`).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

# The commands, registered on the app in the order `tally --help` lists them.
# isort: off
from pipelines.cli import billing  # noqa: F401
from pipelines.cli import analysts  # noqa: F401
from pipelines.cli import servers  # noqa: F401
from pipelines.cli import demo  # noqa: F401

# isort: on
from pipelines.cli.common import app, err


def main() -> None:
    """The `tally` command. It leaves without tearing the interpreter down: with Dagster, DuckDB
    and PyArrow loaded that took about a second of every command, and everything Tally writes is
    fsync'd before a command returns. Threads still running are joined and exit handlers run
    first, as at a normal exit."""
    try:
        _command()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    threading._shutdown()  # type: ignore[attr-defined]  # joins threads, as the interpreter does
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (tally ... | head) or a closed stream
            pass
    os._exit(code)


def _command() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one line for people; TALLY_DEBUG=1 for the traceback
        if os.environ.get("TALLY_DEBUG"):
            raise
        from pipelines.landing.errors import LegacyLakeError

        if isinstance(exc, LegacyLakeError):  # raised from deep inside a run: still a user error
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)
        err.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (TALLY_DEBUG=1 shows details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
