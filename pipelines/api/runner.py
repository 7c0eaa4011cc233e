"""Keep balances fresh while serving: run the billing run when signals or configuration changed.

`tally serve --run-every SECONDS` checks that often whether anything landed or the configuration
changed since the last run and, if so, runs `tally run` for the home in a child process (the same
Dagster definitions as the CLI and the UI). One run at a time; a failed run is logged and retried
at the next tick. The API's balances read what the last successful run published.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

from pipelines.core.clock import now
from pipelines.core.home import Home
from pipelines.landing.lake import Lake

log = logging.getLogger(__name__)


class Runner:
    def __init__(self, home: Home, lake: Lake, every: float):
        self.home, self.lake, self.every = home, lake, every
        self._stop = threading.Event()
        self._last: tuple | None = None
        self._thread = threading.Thread(target=self._loop, name="tally-runner", daemon=True)
        self._thread.start()

    def _state(self) -> tuple:
        stats = self.lake.stats()
        configs = sorted(
            (p.name, p.stat().st_mtime_ns) for p in self.home.config_dir.glob("*.yaml")
        )
        return stats["batches"], tuple(configs)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            state = self._state()
            if state == self._last:
                continue
            # Through today, the open day: the API's balances include what arrived so far.
            today = now().date().isoformat()
            cmd = [sys.executable, "-m", "pipelines.cli", "run", "--home", str(self.home.root)]
            cmd += ["--through", today]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                self._last = state
                log.info("billing run: %s", done.stdout.strip().splitlines()[-1:])
            else:
                log.error("billing run failed: %s", done.stderr.strip()[-2000:])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
