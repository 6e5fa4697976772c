"""End to end: every chapter executed on `smoke` through papermill, the book built with warnings as
errors, and the built HTML checked in a real headless Chromium with the network blocked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lls.book import ROOT
from lls.presets import CHAPTERS

pytestmark = pytest.mark.slow


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
        assert "This run:" in page and "preset smoke" in page and "All parameter values" in page
        assert "injected-parameters" not in page and 'params = {}' not in page  # opens on the science
        assert "cdn.plot.ly" not in page and "cdn.jsdelivr" not in page
    card = (html / "book" / "scorecard.html").read_text()
    assert all(f"C{i}" in card for i in range(1, 12))


@pytest.mark.browser
def test_the_book_reads_well_in_a_browser(smoke_book):
    """Every figure draws, fits its box at 1300 and 800 px, keeps its legend off its slider and its
    labels apart; sliders move; no console error, nothing asked of the network; screenshots kept."""
    from lls.bookcheck import check_book

    shots = ROOT / "_build" / "screenshots" / "smoke"
    problems = check_book(smoke_book["html"], shots)
    assert not problems, "\n".join(problems[:20])
    assert len(list(shots.glob("*.png"))) == 2 * (len(CHAPTERS) + 1)


def test_paper_preset_offline_fails_fast_with_a_clear_error(smoke_book):
    done = lls_command("run", "03_lora_drift", "--preset", "paper", env=smoke_book["env"], timeout=120)
    assert done.returncode == 2
    assert "MissingModelError" in done.stderr and "earlier runs" in done.stderr


def test_staging_removes_the_parameter_cells():
    import nbformat

    from lls.book import without_plumbing

    cells = [nbformat.v4.new_code_cell("preset = 'cpu'", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("preset = 'smoke'", metadata={"tags": ["injected-parameters"]}),
             nbformat.v4.new_code_cell("cfg = start()", metadata={"tags": ["hide-input"]})]
    tags = [c.metadata["tags"] for c in without_plumbing(nbformat.v4.new_notebook(cells=cells)).cells]
    assert tags == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], ["hide-input"]]


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
