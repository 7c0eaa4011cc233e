"""Helpers shared by the statement and report tests: small homes and a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from pipelines.billing.engine import run_engine
from pipelines.core.home import Home
from pipelines.landing import lake as lake_module
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake
from pipelines.landing.readers import ingest_file
from pipelines.pricing.config import load_config
from pipelines.synth import synth
from pipelines.warehouse.publish import publish

CHROMIUM = Path("/usr/bin/chromium")


def make_home(root: Path, workload_dir: Path) -> Home:
    """A home with the workload's configuration and signals landed, run and published."""
    home = Home(root)
    home.config_dir.mkdir(parents=True)
    for path in sorted((workload_dir / "config").glob("*.yaml")):
        shutil.copy(path, home.config_dir / path.name)
    lake = Lake(home.lake)
    for path in sorted((workload_dir / "signals").glob("day-*.jsonl")):
        ingest_file(lake, path)
    run(home)
    return home


def run(home: Home, until: date | None = None) -> None:
    """What `tally run` does, without Dagster: bring the engine up to date, publish."""
    run_engine(home, until=until)
    publish(home, load_config(home.config_dir))


def land(home: Home, signals: list[dict]) -> None:
    report = ingest_signals(Lake(home.lake), signals)
    assert report.failed == 0, report.errors


def close_lake(home: Home) -> None:
    """The lake module caches one LMDB environment per path: close it."""
    lake_module.release(home.lake)


def november(out: Path) -> Path:
    """A deterministic workload covering all of November 2026 (2 customers, pools and seats)."""
    synth(out, signals=2400, days=30, customers=2, seed=11, start=date(2026, 11, 1))
    return out


@dataclass(frozen=True)
class Rendered:
    screenshot: Path
    charts: list[dict]  # per <svg class="chart">: width, height and number of drawn shapes
    errors: list[str]  # console errors and page errors


def render_in_chromium(html_file: Path, screenshot: Path) -> Rendered:
    """Open `html_file` in headless Chromium (Debian's /usr/bin/chromium), take a full-page
    screenshot, and measure what the SVG charts drew."""
    if not CHROMIUM.exists():
        if os.environ.get("TALLY_REQUIRE_CHROMIUM"):
            pytest.fail(f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", _offline)
            page.goto(html_file.as_uri(), wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            charts = page.eval_on_selector_all(
                "svg.chart",
                """svgs => svgs.map(svg => {
                    const box = svg.getBoundingClientRect();
                    const drawn = s => s.getBBox().width > 0 || s.getBBox().height > 0;
                    const shapes = [...svg.querySelectorAll('path, rect, circle')].filter(drawn);
                    return {width: box.width, height: box.height, shapes: shapes.length};
                })""",
            )
        finally:
            browser.close()
    return Rendered(screenshot, charts, errors)


def _offline(route) -> None:
    """Only the page itself may load: a self-contained page fetches nothing."""
    if route.request.url.startswith("file://"):
        route.continue_()
    else:
        route.abort()


A4_PRINT_WIDTH = 703  # CSS px of an A4 page's printable width: (210 mm - 2 x 12 mm) at 96 dpi
_OVERFLOW_JS = """() => {
    // Every element whose content is wider than its box (clipped or spilling), and every
    // element that sticks out of the page's main column.
    const main = document.querySelector('main');
    const right = main.getBoundingClientRect().right + 0.5;
    const bad = [];
    for (const el of document.querySelectorAll('main *')) {
        if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
        const box = el.getBoundingClientRect();
        const name = el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
            ? '.' + el.className : '');
        if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline')
            bad.push(`${name} scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}: `
                     + el.textContent.slice(0, 60));
        else if (box.right > right)
            bad.push(`${name} right edge ${box.right} > main ${right}: `
                     + el.textContent.slice(0, 60));
    }
    if (document.documentElement.scrollWidth > window.innerWidth)
        bad.push(`page scrollWidth ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
    return bad;
}"""


# Every place where an identifier cell (`td.id`) wraps inside a word: between two characters of
# one text node (a `<wbr>` ends a node) neither of which is a separator (`_ - . / : @`, a space,
# a comma or the middle dot of a seat's users).
_MIDWORD_JS = """() => {
    const seps = new Set(['_', '-', '.', '/', ':', '@', ' ', '\u00b7', ',']);
    const bad = [];
    for (const cell of document.querySelectorAll('main td.id')) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        let prev = null;  // [character, top of its line box, its text node]
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.length; i++) {
                const range = document.createRange();
                range.setStart(node, i);
                range.setEnd(node, i + 1);
                const rect = range.getClientRects()[0];
                if (!rect) continue;
                const ch = node.data[i];
                if (prev && prev[2] === node && rect.top > prev[1] + 1
                    && !seps.has(prev[0]) && !seps.has(ch))
                    bad.push(`${cell.textContent.slice(0, 60)}: ${prev[0]} | ${ch}`);
                prev = [ch, rect.top, node];
            }
        }
    }
    return bad;
}"""


@dataclass(frozen=True)
class Layout:
    screenshot: Path
    overflows: list[str]  # elements wider than their container (empty: everything fits)
    height: int
    midword: list[str] = ()  # identifier cells wrapped inside a word (empty: none)


def layout_in_chromium(
    html_file: Path,
    screenshot: Path,
    width: int,
    print_media: bool = False,
    pdf: Path | None = None,
) -> Layout:
    """Open `html_file` at `width` CSS px (screen, or print media as on an A4 page), take a
    full-page screenshot, list what does not fit, and optionally print it to `pdf` (A4)."""
    if not CHROMIUM.exists():
        if os.environ.get("TALLY_REQUIRE_CHROMIUM"):
            pytest.fail(f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.route("**/*", _offline)
            if print_media:
                page.emulate_media(media="print")
            page.goto(html_file.as_uri(), wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            overflows = page.evaluate(_OVERFLOW_JS)
            midword = page.evaluate(_MIDWORD_JS)
            height = page.evaluate("document.documentElement.scrollHeight")
            if pdf is not None:
                page.pdf(path=str(pdf), format="A4", prefer_css_page_size=True)
        finally:
            browser.close()
    return Layout(screenshot, overflows, height, midword)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
