"""Look at the built book in a real headless browser, as a reader would, and list what is wrong.

:func:`check_book` serves the built HTML on loopback, opens every chapter page and the scorecard
in Debian's Chromium (through playwright) at each viewport width, blocks every request that is
not to the local server, and checks, for every plotly figure:

* it drew marks (lines, points, bars, heatmap images), and a caption and a CSV link stand under it
  (chapters; the scorecard's figure has its own caption);
* no text (title, axis title, legend item, annotation, slider label, colour-bar title) extends
  past the figure's box; the legend does not intersect the slider; no two annotations overlap;
  the title touches neither the legend nor an annotation (panel titles are annotations); no
  annotation sits on a colour bar, and no colour bar sits on a plot area;
* moving its slider (if any) changes the plot;

and, for every page, that the console showed no error and nothing asked the network. A
screenshot of each page at each width is written to ``shots``. Used by the tests (smoke book)
and by ``make check-book`` (the cpu book).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lls.errors import LLSError
from lls.presets import CHAPTERS

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]
WIDTHS = (1300, 800)

MARKS = """gd => Array.from(gd.querySelectorAll(
  'path.js-line, path.point, .barlayer path, .boxlayer path, .heatmaplayer image, .imagelayer image'))
  .filter(m => m.tagName === 'image' || (m.getAttribute('d') || '').length > 4).length"""

CAPTIONED = """gd => { const f = gd.closest('figure.lls-figure'); const c = f && f.querySelector('figcaption');
  return !!c && c.textContent.replace('data (CSV)', '').trim().length > 20 && !!c.querySelector('a[download]'); }"""

LAYOUT = """gd => {
  const box = gd.getBoundingClientRect(), out = [];
  const rect = el => el.getBoundingClientRect();
  const visible = r => r.width > 0.5 && r.height > 0.5;
  const meets = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const label = el => (el.textContent || '').trim().slice(0, 40);
  for (const t of gd.querySelectorAll('.gtitle, .xtitle, .ytitle, .legend text, .annotation-text, .slider-container text, .cbtitle text')) {
    const r = rect(t);
    if (visible(r) && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1))
      out.push(`text "${label(t)}" extends past the figure`);
  }
  const legend = gd.querySelector('.legend'), slider = gd.querySelector('.slider-container');
  if (legend && slider && visible(rect(legend)) && meets(rect(legend), rect(slider))) out.push('the legend overlaps the slider');
  const notes = Array.from(gd.querySelectorAll('.annotation')).filter(a => visible(rect(a)));
  const title = gd.querySelector('.gtitle');
  if (title && visible(rect(title))) {
    if (legend && visible(rect(legend)) && meets(rect(title), rect(legend))) out.push('the title overlaps the legend');
    for (const a of notes) if (meets(rect(title), rect(a))) out.push(`the title overlaps "${label(a)}"`);
  }
  for (let i = 0; i < notes.length; i++) for (let j = i + 1; j < notes.length; j++)
    if (meets(rect(notes[i]), rect(notes[j]))) out.push(`annotations "${label(notes[i])}" and "${label(notes[j])}" overlap`);
  const bars = Array.from(gd.querySelectorAll('.colorbar')).filter(c => visible(rect(c)));
  const areas = Array.from(gd.querySelectorAll('.nsewdrag')).filter(a => visible(rect(a)));
  for (const c of bars) {
    for (const a of notes) if (meets(rect(c), rect(a))) out.push(`annotation "${label(a)}" sits on a colour bar`);
    for (const a of areas) if (meets(rect(c), rect(a))) out.push('a colour bar sits on a plot area');
  }
  return out;
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would bury the problems found
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a free loopback port for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def chromium() -> str:
    """Path of Debian's Chromium, or a clear error saying how to install it."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise LLSError(f"{path} is missing: install Debian's chromium (`make chromium`, i.e. apt-get install "
                       f"chromium); playwright cannot download a browser here.")
    return path


def _move_slider(page, plot) -> bool:
    """Click the slider of ``plot`` away from its active step; True when the plot changed."""
    rail = plot.locator(".slider-rail-touch-rect").first
    rail.scroll_into_view_if_needed()
    before = plot.locator(".cartesianlayer").inner_html()
    box = rail.bounding_box()
    active, steps = plot.evaluate("gd => [gd.layout.sliders[0].active || 0, gd.layout.sliders[0].steps.length]")
    target = 0.03 if active > (steps - 1) / 2 else 0.97
    page.mouse.click(box["x"] + target * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    return plot.locator(".cartesianlayer").inner_html() != before


def _check_page(page, url: str, name: str, width: int, shots: Path) -> list[str]:
    """Every check of one page at one width; returns the problems found."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(url, wait_until="load")
    page.wait_for_timeout(400)
    problems = []
    plots = page.locator(".js-plotly-plot")
    for index in range(plots.count()):
        plot = plots.nth(index)
        where = f"{name} @{width}px, figure {index + 1}"
        if plot.evaluate(MARKS) == 0:
            problems.append(f"{where}: drew no data")
        if not name.startswith("scorecard") and not plot.evaluate(CAPTIONED):
            problems.append(f"{where}: has no caption")
        problems += [f"{where}: {p}" for p in plot.evaluate(LAYOUT)]
        if plot.locator(".slider-rail-touch-rect").count() and not _move_slider(page, plot):
            problems.append(f"{where}: moving the slider did not change the plot")
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    return problems


def check_book(html: Path, shots: Path, widths: Sequence[int] = WIDTHS,
               pages: Sequence[str] | None = None) -> list[str]:
    """Open the built book at ``html`` in Chromium and return every problem found (empty: all good).

    ``pages`` are paths under ``html`` without ``.html`` (default: every chapter and the
    scorecard); screenshots go to ``shots/<page>-<width>.png``.
    """
    from playwright.sync_api import sync_playwright

    pages = list(pages or [f"notebooks/{c}" for c in CHAPTERS] + ["book/scorecard"])
    problems, blocked, errors = [], [], []
    with served(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                   else (blocked.append(route.request.url), route.abort()))
        page.on("console", lambda msg: msg.type == "error" and errors.append(f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        for path in pages:
            for width in widths:
                problems += _check_page(page, f"{base}/{path}.html", Path(path).name, width, shots)
        browser.close()
    problems += [f"asked the network for {url}" for url in blocked[:5]]
    problems += [f"console error: {e}" for e in errors[:5]]
    return problems
