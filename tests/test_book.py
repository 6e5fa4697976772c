"""End to end: every chapter executed on `smoke` through papermill, the book built with warnings as
errors, and the built HTML checked in a real headless Chromium with the network blocked."""

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lls.presets import CHAPTERS

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def lls_command(*args, env, timeout=900):
    return subprocess.run([sys.executable, "-m", "lls", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """Build the whole book on the smoke preset into a temporary folder (once per test module)."""
    tmp = tmp_path_factory.mktemp("book")
    env = {**os.environ, "LLS_RESULTS_DIR": str(tmp / "results"), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    done = lls_command("book", "--preset", "smoke", "--build-dir", str(tmp / "build"), env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return {"tmp": tmp, "env": env, "html": tmp / "build" / "_build" / "html"}


def test_every_chapter_wrote_metrics(smoke_book):
    for chapter in CHAPTERS:
        payload = json.loads((smoke_book["tmp"] / "results" / chapter / "smoke" / "metrics.json").read_text())
        assert payload["provenance"]["preset"] == "smoke"
        for claim in payload["claims"]:
            assert {"id", "value", "paper", "verdict", "preset", "seeds"} <= set(claim)


def test_rerun_is_cached_and_prints_metrics_path_last(smoke_book):
    done = lls_command("run", "01", "--preset", "smoke", env=smoke_book["env"], timeout=120)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.endswith("01_theory/smoke/metrics.json") and Path(last).exists()


def test_book_pages_and_scorecard(smoke_book):
    html = smoke_book["html"]
    for chapter in CHAPTERS:
        page = (html / "notebooks" / f"{chapter}.html").read_text()
        assert "Provenance:" in page and "preset smoke" in page
        assert "cdn.plot.ly" not in page and "cdn.jsdelivr" not in page
    card = (html / "book" / "scorecard.html").read_text()
    assert all(f"C{i}" in card for i in range(1, 12))


@pytest.fixture(scope="module")
def served(smoke_book):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(smoke_book["html"]))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


FIGURES_DRAWN = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const marks = gd.querySelectorAll(
    'path.js-line, path.point, .barlayer path, .boxlayer path, .pielayer path, .heatmaplayer image, .imagelayer image');
  return Array.from(marks).filter(m => m.tagName === 'image' || (m.getAttribute('d') || '').length > 4).length;
})"""


@pytest.mark.browser
def test_figures_draw_offline_and_sliders_move(served):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    blocked, errors, slider_moved = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
                   else (blocked.append(route.request.url), route.abort()))
        page.on("console", lambda msg: msg.type == "error" and errors.append(f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        for chapter in CHAPTERS:
            page.goto(f"{served}/notebooks/{chapter}.html", wait_until="load")
            page.wait_for_timeout(300)
            drawn = page.evaluate(FIGURES_DRAWN)
            assert drawn, f"{chapter}: no plotly figure on the page"
            assert all(n > 0 for n in drawn), f"{chapter}: a figure drew no data ({drawn})"
            for index in range(page.locator(".js-plotly-plot").count()):
                plot = page.locator(".js-plotly-plot").nth(index)
                rail = plot.locator(".slider-rail-touch-rect")
                if rail.count() == 0:
                    continue
                rail.first.scroll_into_view_if_needed()
                before = plot.locator(".cartesianlayer").inner_html()
                box = rail.first.bounding_box()
                active, steps = plot.evaluate("gd => [gd.layout.sliders[0].active || 0, gd.layout.sliders[0].steps.length]")
                target = 0.03 if active > (steps - 1) / 2 else 0.97  # move the slider away from where it is
                page.mouse.click(box["x"] + target * box["width"], box["y"] + box["height"] / 2)
                page.wait_for_timeout(300)
                slider_moved.append((chapter, plot.locator(".cartesianlayer").inner_html() != before))
        browser.close()
    assert not blocked, f"the book asked the network for {blocked[:5]}"
    assert not errors, f"console errors: {errors[:5]}"
    assert slider_moved, "no figure with a slider in any chapter"
    assert all(moved for _, moved in slider_moved), f"a slider did not change its plot: {slider_moved}"


def test_paper_preset_offline_fails_fast_with_a_clear_error(smoke_book):
    done = lls_command("run", "03_lora_drift", "--preset", "paper", env=smoke_book["env"], timeout=120)
    assert done.returncode == 2
    assert "MissingModelError" in done.stderr and "earlier runs" in done.stderr


def test_staging_drops_widget_outputs_and_state():
    import nbformat

    from lls.book import WIDGET_VIEW, without_widgets

    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "m"}, "text/plain": "bar"}),
        nbformat.v4.new_output("display_data", data={"text/html": "<div>figure</div>"})])
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}})
    cleaned = without_widgets(notebook)
    assert [list(o.data) for o in cleaned.cells[0].outputs] == [["text/html"]]
    assert "widgets" not in cleaned.metadata
