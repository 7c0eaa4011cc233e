"""Write benchmark results: JSON (everything), a markdown table, and an SVG plot it links to."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the non-interactive backend

plt.rcParams["svg.hashsalt"] = "tally-bench"  # the same results give the same SVG
plt.rcParams["svg.fonttype"] = "none"  # text stays text: small, diffable files


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def _machine(result: dict) -> str:
    return "machine: " + ", ".join(f"{k} {v}" for k, v in result["machine"].items())


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def write(result: dict, results: Path) -> None:
    """`<size>.json`, `<size>.md` (figures, checks, the plot) and `<size>.svg`; prints the table."""
    results.mkdir(parents=True, exist_ok=True)
    name = result["size"]
    (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_size(result, results / f"{name}.svg")
    lines = [
        f"# Tally benchmark: {result['landed_lines']:,} signals over 30 days ({name})",
        "",
        _machine(result),
        "",
        "| # | figure | median | min | max | unit | runs |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]
    for f in result["figures"]:
        lines.append(
            f"| {f['fig']} | {f['figure']} | {_number(f['median'])} | {_number(f['min'])} "
            f"| {_number(f['max'])} | {f['unit']} | {f['runs']} |"
        )
    lines += ["", "| check | ok | details |", "|---|---|---|"]
    for check, record in result["checks"].items():
        details = ", ".join(f"{k} {v:,}" for k, v in record.items() if k != "ok")
        lines.append(f"| {check} | {'yes' if record['ok'] else '**NO**'} | {details} |")
    lines += ["", f"![figures 2, 4 and 6]({name}.svg)"]
    table = "\n".join(lines)
    (results / f"{name}.md").write_text(table + "\n")
    print(table)


def _bars(ax: plt.Axes, rows: list[dict], labels: list[str], title: str, unit: str) -> None:
    medians = [r["median"] for r in rows]
    errors = [[r["median"] - r["min"] for r in rows], [r["max"] - r["median"] for r in rows]]
    ax.barh(labels, medians, xerr=errors, color="#4c78a8", ecolor="#333333", capsize=3)
    ax.invert_yaxis()
    ax.margins(x=0.15)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)
    for y, row in enumerate(rows):  # the median, right of the max whisker
        ax.annotate(f" {row['median']:,.2f}", (row["max"], y), va="center", fontsize=8)


def plot_size(result: dict, path: Path) -> None:
    """Left: the same pricing by Tally (full run), its JSON floor and the peers. Right: the run
    that adds day 31, by days of history (min-max whiskers)."""
    rows = {f["key"]: f for f in result["figures"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    pricing = ["run", "floor", "peer_chdb", "peer_polars", "peer_python"]
    present = [k for k in pricing if k in rows]
    _bars(
        left,
        [rows[k] for k in present],
        [
            "Tally: " + rows[k]["figure"] if k == "run" else rows[k]["figure"].split(":")[0]
            for k in present
        ],
        "Pricing the same landed files (figures 2 and 6)",
        "seconds",
    )
    history = sorted(
        (k for k in rows if k.startswith("increment_") and k[10:].isdigit()),
        key=lambda k: int(k[10:]),
    )
    _bars(
        right,
        [rows[k] for k in history],
        [{"0": "none (day 31 alone)", "1": "1 day"}.get(k[10:], f"{k[10:]} days") for k in history],
        "Run adding day 31, by days of history (figure 4)",
        "seconds (fixed overhead subtracted)",
    )
    fig.suptitle(f"Tally benchmark, {result['landed_lines']:,} signals", fontsize=11)
    _save(fig, path)


def write_scaling(result: dict, results: Path) -> None:
    """`scaling.json`, `scaling.md` and `scaling.svg` (figure 3); prints the table."""
    results.mkdir(parents=True, exist_ok=True)
    (results / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_scaling(result, results / "scaling.svg")
    tolerance = result["tolerance"]
    lines = [
        "# Tally benchmark: scaling of the full run (figure 3)",
        "",
        _machine(result),
        "",
        "| size | signals | full run (s) | min | max | peak RSS (GB) | fixed overhead (s) "
        "| s per 1M signals | vs smallest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["sizes"]:
        run = r["run"]
        lines.append(
            f"| {r['size']} | {r['signals']:,} | {run['median']:,.1f} | {run['min']:,.1f} "
            f"| {run['max']:,.1f} | {r['rss_gb']['median']:,.2f} | {r['noop']['median']:,.1f} "
            f"| {r['per_million']:,.2f} | {r['growth']:.2f}x |"
        )
    measure = "seconds per million signals (fixed overhead subtracted)"
    band = f"the ±{tolerance:.0%} band around the smallest size's"
    verdict = (
        f"Growth is linear: {measure} stay within {band}."
        if result["linear"]
        else f"Growth is **not linear**: {measure} leave {band} (column `vs smallest`)."
    )
    lines += [
        "",
        verdict,
        "",
        "![full run time and peak RSS by size](scaling.svg)",
    ]
    table = "\n".join(lines)
    (results / "scaling.md").write_text(table + "\n")
    print(table)


def plot_scaling(result: dict, path: Path) -> None:
    """Run time and peak RSS against signals, with the line through the smallest size."""
    sizes = result["sizes"]
    x = [r["signals"] / 1e6 for r in sizes]
    fig, (time_ax, rss_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((time_ax, "run", "full run (s)"), (rss_ax, "rss_gb", "peak RSS (GB)")):
        medians = [r[key]["median"] for r in sizes]
        errors = [
            [r[key]["median"] - r[key]["min"] for r in sizes],
            [r[key]["max"] - r[key]["median"] for r in sizes],
        ]
        ax.errorbar(x, medians, yerr=errors, marker="o", capsize=3, color="#4c78a8")
        ax.set_xlabel("signals (millions)")
        ax.set_ylabel(label)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    noop = sizes[0]["noop"]["median"]
    linear = [noop + sizes[0]["per_million"] * m for m in x]
    time_ax.plot(x, linear, "--", color="#999999", label="linear from the smallest size")
    time_ax.legend(fontsize=8)
    time_ax.set_title("Full run time (figure 3)", fontsize=10)
    rss_ax.set_title("Full run peak RSS (figure 3)", fontsize=10)
    _save(fig, path)
