"""Build the HTML book: run every chapter, generate the scorecard, stage the sources, call jupyter-book.

The book is built from a staging folder ``_build/<preset>/src`` holding the top-level
``_config.yml`` and ``_toc.yml``, ``book/`` (with plotly.js copied into ``_static``, so figures
render with no network) and the executed notebooks of the runs. Notebooks are not executed by
jupyter-book (``execute_notebooks: off``): execution, caching and parameters belong to
:mod:`lls.runner`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat

from lls.errors import LLSError
from lls.metrics import results_root
from lls.presets import CHAPTERS
from lls.runner import check_writable, run_all
from lls.scorecard import rules_changed_page, scorecard_page

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def plotly_js() -> Path:
    """The plotly.js bundle shipped inside the installed ``plotly`` package (same version as the figures)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise LLSError(f"plotly.min.js not found at {path}; reinstall plotly (make setup).")
    return path


def without_widgets(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop ipywidgets outputs (tqdm.auto progress bars) and the notebook's widget state.

    A static page cannot run widgets, and their presence makes the book load require.js and the
    widget manager from a CDN, which breaks offline reading and plotly's own loading.
    """
    for cell in notebook.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    notebook.metadata.pop("widgets", None)
    return notebook


PLUMBING = ("parameters", "injected-parameters")


def without_plumbing(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Tag the parameters cell and papermill's injected one ``remove-cell``: the built chapter opens
    on the science (the values used are in the run's collapsed table; the cells stay in the
    ``.md`` and the executed ``.ipynb`` for people who run it)."""
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if any(t in tags for t in PLUMBING) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    return notebook


def stage(preset: str, build_dir: Path) -> Path:
    """Copy the book's sources and the preset's executed notebooks into ``build_dir/src``."""
    src = build_dir / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(ROOT / "book", src / "book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, src / name)
    (src / "book" / "_static").mkdir(exist_ok=True)
    shutil.copy(plotly_js(), src / "book" / "_static" / "plotly.min.js")
    (src / "notebooks").mkdir()
    for chapter in CHAPTERS:
        notebook = nbformat.read(results_root() / chapter / preset / "executed.ipynb", as_version=4)
        nbformat.write(without_plumbing(without_widgets(notebook)), src / "notebooks" / f"{chapter}.ipynb")
    (src / "book" / "scorecard.md").write_text(scorecard_page(preset))
    (src / "book" / "rules_changed.md").write_text(rules_changed_page())
    return src


def build_book(preset: str = "cpu", overrides: Mapping[str, object] | None = None, force: bool = False,
               build_dir: Path | None = None) -> Path:
    """Run every chapter on ``preset`` (fresh runs are reused), then build; return ``index.html``.

    The build folder, like the results and cache folders, is checked to be writable before any
    chapter runs.
    """
    if overrides:
        raise LLSError("The book is built from each chapter's preset defaults so that its scorecard "
                       "describes one configuration; rerun single chapters with `python -m lls run` "
                       "to explore other parameters.")
    build_dir = ROOT / "_build" / preset if build_dir is None else build_dir
    check_writable(build_dir, "--build-dir")
    run_all(preset, force=force)
    src = stage(preset, build_dir)
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--path-output",
               str(build_dir), "--warningiserror", "--keep-going", "--all", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise LLSError(f"jupyter-book failed (exit {done.returncode}); its output:\n{done.stdout[-4000:]}"
                       f"\n{done.stderr[-4000:]}")
    return build_dir / "_build" / "html" / "index.html"
