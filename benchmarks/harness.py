"""What every benchmark module shares: the seeded workload, fresh homes, timed `tally` commands
(wall time and the peak RSS of that one process tree), figures with median/min/max, machine info.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"
RESULTS = ROOT / "results"
SIZES = {"smoke": 20_000, "1m": 1_000_000, "10m": 10_000_000, "30m": 30_000_000}
DAYS = 30  # the history; the workload holds one more day, held out for the incremental figure
HISTORIES = (0, 1, 10)  # figure 4: days of history in homes of their own (the main home has DAYS)


@dataclass
class Figure:
    """One measured quantity over the repeats; `fig` is its figure number (benchmarks/README.md)."""

    fig: int
    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    def row(self, key: str) -> dict:
        return {
            "key": key,
            "fig": self.fig,
            "figure": self.name,
            "unit": self.unit,
            "median": statistics.median(self.values),
            "min": min(self.values),
            "max": max(self.values),
            "runs": len(self.values),
        }


@dataclass(frozen=True)
class Workload:
    """A `tally synth` output: `config/` and DAYS + 1 daily JSONL files (the last held out)."""

    root: Path
    days: tuple[Path, ...]
    lines: dict[str, int]  # file name -> signals (lines) in it

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def history(self) -> list[str]:
        return [str(p) for p in self.days[:-1]]

    @property
    def added(self) -> str:
        """Day 31: the file the incremental figure adds to every history."""
        return str(self.days[-1])

    def count(self, files: list[str]) -> int:
        return sum(self.lines[Path(f).name] for f in files)


@dataclass
class Bench:
    """One harness invocation: the workload, where its homes live, and what was measured."""

    size: str
    workload: Workload
    work: Path
    histories: tuple[int, ...] = HISTORIES
    repeat: int = 0  # the current repeat, from 1
    figures: dict[str, Figure] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # each with "ok"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """This repeat's homes (a new path per repeat: the lake catalog is opened once per path)."""
        return self.work / f"repeat-{self.repeat}"

    @property
    def home(self) -> Path:
        """The main home: the 30 days landed and run (figures 1 and 2), then reused."""
        return self.dir / "home"

    def add(self, key: str, fig: int, name: str, unit: str, value: float) -> None:
        self.figures.setdefault(key, Figure(fig, name, unit)).values.append(value)

    def last(self, key: str) -> float:
        """The value of figure `key` in the current repeat."""
        return self.figures[key].values[-1]

    def check(self, name: str, ok: bool, **record: Any) -> None:
        """Record a check; a failed one is kept over any later pass, so none is hidden."""
        if self.checks.get(name, {}).get("ok", True):
            self.checks[name] = {"ok": ok, **record}


Section = Callable[[Bench], None]


def workload(signals: int, work: Path = WORK, seed: int = 7) -> Workload:
    """The seeded workload for about `signals` signals over DAYS days (cached under `work`)."""
    from pipelines.synth import synth

    out = work / f"synth-{signals}-{DAYS + 1}-{seed}"
    done = out / "done.json"
    if not done.exists():
        shutil.rmtree(out, ignore_errors=True)
        result = synth(
            out,
            signals=signals * (DAYS + 1) // DAYS,
            days=DAYS + 1,
            customers=max(6, min(200, signals // 50_000)),
            seed=seed,
        )
        lines = {p.name: count_lines(p) for p in result.signal_files}
        done.write_text(json.dumps({"lines": lines, "counts": result.counts}, indent=1))
    lines = json.loads(done.read_text())["lines"]
    return Workload(out, tuple(out / "signals" / name for name in sorted(lines)), lines)


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))


def python(
    module: str, *args: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of `python -m module args` run to completion.

    The peak RSS is that process tree's own (wait4), not the high-water mark of every child so far.
    An exit code outside `ok` raises with the end of stderr.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in ok:
        raise RuntimeError(f"{module} {' '.join(args)} exited {proc.returncode}:\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss * 1024, stdout


def tally(home: Path, *args: str) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one `tally` command against `home`.

    `tally ingest` exits 1 when some records fail, as the workload's dirt makes them; landing is
    checked by counts instead. Any other command must succeed (`tally run` exits 1 when a check
    fails: a benchmark of a failing run is no benchmark).
    """
    env = {**os.environ, "TALLY_HOME": str(home)}
    env.pop("TALLY_DAGSTER_STORAGE", None)  # each home keeps its own Dagster storage
    ok = (0, 1) if args[0] == "ingest" else (0,)
    return python("pipelines.cli", *args, env=env, ok=ok)


def prepare_home(home: Path, wl: Workload) -> None:
    """A fresh home holding only the workload's configuration."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "config").mkdir(parents=True)
    shutil.copy(wl.config / "company.yaml", home / "config" / "company.yaml")


def machine() -> dict[str, Any]:
    import chdb
    import dagster
    import duckdb
    import polars
    import pyarrow

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dagster": dagster.__version__,
        "pyarrow": pyarrow.__version__,
        "polars": polars.__version__,
        "chdb": chdb.__version__,
        "platform": platform.platform(),
    }
