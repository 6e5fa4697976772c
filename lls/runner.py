"""Execute chapter notebooks through papermill and keep each run's outputs in its own folder.

A run of chapter ``NN_name`` with a preset and parameters writes ``executed.ipynb`` and
``metrics.json`` (the notebook writes it through :func:`lls.notebook.finish`) to
``results/<NN_name>/<preset>[-<hash>]/``. A run whose notebook source, ``lls`` code and
parameters are unchanged since its last success is not executed again.

papermill cannot read jupytext files, so the MyST source is converted in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from lls.cache import cache_root, code_hash, lls_references
from lls.errors import ConfigError, LLSError
from lls.metrics import results_root, run_dir
from lls.presets import CHAPTERS, Config, chapter_params, resolve

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


class NotebookFailed(LLSError, RuntimeError):
    """A chapter notebook raised while executing; the partly executed notebook is kept."""


def chapter_name(text: str) -> str:
    """Accept ``03_lora_drift``, ``03``, ``lora_drift`` or a path to the notebook; return ``03_lora_drift``."""
    stem = Path(text).name.split(".")[0]
    for name in CHAPTERS:
        if stem in (name, name[:2], name[3:]):
            return name
    raise ConfigError(f"Unknown notebook {text!r}. The chapters are: {', '.join(CHAPTERS)} "
                      f"(a number such as 03 works too).")


def source_path(chapter: str) -> Path:
    """The MyST-markdown source of a chapter: ``notebooks/<chapter>.md``."""
    return NOTEBOOK_DIR / f"{chapter}.md"


def notebook_modules(chapter: str) -> list[str]:
    """The ``lls`` modules a chapter notebook's code cells import or use (``lls.<name>``)."""
    import jupytext

    names = set()
    for cell in jupytext.read(source_path(chapter)).cells:
        if cell.cell_type == "code":
            try:
                names |= lls_references(cell.source)
            except SyntaxError:  # IPython magics: the cell is still covered by the source hash
                continue
    return sorted(names)


def run_key(cfg: Config) -> str:
    """Hash of what a run depends on: notebook source, the ``lls`` code it reaches, preset, parameters.

    Spine code the notebook does not reach (this runner, the book builder) is not part of it, so
    changing that does not re-execute chapters.
    """
    code = code_hash(*notebook_modules(cfg.chapter))
    blob = json.dumps([source_path(cfg.chapter).read_text(), code, cfg.preset, dict(cfg.params)],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def is_fresh(cfg: Config) -> bool:
    """True when the last successful run of ``cfg`` used the current notebook, code and parameters."""
    folder = run_dir(cfg)
    key_file = folder / "run_key"
    return (key_file.exists() and key_file.read_text() == run_key(cfg)
            and (folder / "metrics.json").exists() and (folder / "executed.ipynb").exists())


def check_writable(folder: Path, variable: str) -> None:
    """Raise :class:`LLSError` unless ``folder`` exists (or can be created) and takes a new file.

    ``variable`` is what moves the folder (an environment variable or a command-line option);
    the message names it. Called before any work, so a bad folder costs nothing.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lls-write-check-"):
            pass
    except OSError as err:
        raise LLSError(
            f"lls cannot write to the folder {folder} ({err.strerror or err}). Point {variable} at a "
            f"folder you can write, or make this one writable; nothing has been run."
        ) from None


def check_folders() -> None:
    """Check, before any work, that the results (``LLS_RESULTS_DIR``) and cache (``LLS_CACHE_DIR``)
    folders can be written; raise :class:`LLSError` naming the folder and its variable if not."""
    check_writable(results_root(), "LLS_RESULTS_DIR")
    check_writable(cache_root(), "LLS_CACHE_DIR")


def run_chapter(chapter: str, preset: str | None = None, overrides: Mapping[str, object] | None = None,
                force: bool = False, progress: bool = True) -> Path:
    """Execute one chapter (unless its last run is still fresh) and return its ``metrics.json`` path.

    ``overrides`` may hold strings (from the command line): they are converted and validated
    against the chapter's parameters before anything runs, and so are the results and cache
    folders (:func:`check_folders`).
    """
    import jupytext
    import papermill

    cfg = resolve(chapter, preset, **dict(overrides or {}))
    folder = run_dir(cfg)
    if not force and is_fresh(cfg):
        print(f"[lls] {chapter} ({cfg.tag()}): up to date, not re-executed", file=sys.stderr)
        return folder / "metrics.json"
    check_folders()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_key").unlink(missing_ok=True)
    (folder / "metrics.json").unlink(missing_ok=True)
    notebook = jupytext.read(source_path(chapter))
    parameters = {"preset": cfg.preset, "params": {k: cfg.params[k] for k in (overrides or {})}}
    output = folder / "executed.ipynb"
    os.environ["LLS_BATCH"] = "1"  # the kernel inherits it: chapters skip live ipywidgets controls
    try:
        papermill.execute_notebook(notebook, str(output), parameters=parameters, kernel_name="python3",
                                   progress_bar=progress, cwd=str(NOTEBOOK_DIR), log_output=False)
    except papermill.PapermillExecutionError as err:
        raise NotebookFailed(
            f"Chapter {chapter} failed in cell {err.exec_count} with {err.ename}: {err.evalue}. The partly "
            f"executed notebook is kept at {output}; earlier runs and cached results are untouched. Fix "
            f"the cause (the message above says what) and run the same command again."
        ) from None
    if not (folder / "metrics.json").exists():
        raise NotebookFailed(f"Chapter {chapter} ran but wrote no metrics.json to {folder}; its last cell "
                             f"must call lls.notebook.finish(cfg, claims).")
    (folder / "run_key").write_text(run_key(cfg))
    return folder / "metrics.json"


def split_overrides(overrides: Mapping[str, object]) -> dict[str, dict[str, object]]:
    """For ``run --all``: give each chapter the overrides it has; reject names no chapter has."""
    per_chapter = {ch: {k: v for k, v in overrides.items() if k in chapter_params(ch)} for ch in CHAPTERS}
    used = {k for d in per_chapter.values() for k in d}
    unknown = sorted(set(overrides) - used)
    if unknown:
        raise ConfigError(f"No chapter has the parameter(s) {unknown}. Run `python -m lls params` to list "
                          f"every chapter's parameters.")
    for chapter, values in per_chapter.items():
        resolve(chapter, None, **values)  # type and range checks before anything runs
    return per_chapter


def run_all(preset: str | None = None, overrides: Mapping[str, object] | None = None,
            force: bool = False, progress: bool = True) -> list[Path]:
    """Execute every chapter in order; all parameters are validated before the first one runs."""
    per_chapter = split_overrides(dict(overrides or {}))
    for chapter, values in per_chapter.items():
        resolve(chapter, preset, **values)
    return [run_chapter(ch, preset, values, force=force, progress=progress)
            for ch, values in per_chapter.items()]
