"""Results cache for expensive experiment calls, keyed by function, arguments and ``lls``'s code.

Built on :class:`joblib.Memory`: joblib keys an entry on the function's source and the hash of
its arguments, writes entries atomically (temporary file, then rename), and does not serve an
entry it cannot load. On top of that each cached function's entries live in a folder named by a
hash of the ``lls`` modules its module depends on (its ``lls`` imports, followed transitively), so
a change to any code that can change its result (a helper it calls, a model loader) starts a
fresh cache instead of serving a stale one, while a change to unrelated code (plots, the runner)
keeps it.

Use ``@cached`` on a module-level function whose arguments are plain values or
:class:`lls.presets.Config` objects. The location is ``$LLS_CACHE_DIR`` if set, else
``~/.cache/lls``; ``LLS_NO_CACHE=1`` turns caching off.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import os
from pathlib import Path

import joblib

PACKAGE_DIR = Path(__file__).resolve().parent


def cache_root() -> Path:
    """The folder holding ``lls``'s caches (results and converted model weights)."""
    return Path(os.environ.get("LLS_CACHE_DIR", Path.home() / ".cache" / "lls")).expanduser()


def module_file(name: str) -> Path | None:
    """The source file of ``lls`` module ``name`` (``lls.a.b``), or ``None`` if there is none."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    candidates = (base.with_suffix(".py"), base / "__init__.py") if parts else (base / "__init__.py",)
    return next((c for c in candidates if c.exists()), None)


def _package(module: str) -> str:
    """The package a module belongs to (itself for a package's ``__init__``)."""
    path = module_file(module)
    return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]


def lls_references(source: str, module: str = "") -> set[str]:
    """Module names ``lls.*`` that Python ``source`` (of module ``module``) imports or reaches as
    ``lls.<name>`` attributes.

    ``from pkg import a, b`` counts ``pkg.a`` and ``pkg.b`` when those are modules, and ``pkg``
    itself only when some imported name is not a module (so it comes from ``pkg/__init__.py``).
    A chapter protocol that imports ``lls.chapters.x.config`` therefore depends on that file,
    not on the package's ``__init__`` that re-exports the chapter's figures and claims.
    Relative imports are resolved against ``module``.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "lls"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(module).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "lls":
                continue
            members = {f"{base}.{a.name}" for a in node.names}
            modules = {m for m in members if module_file(m) is not None}
            names |= modules
            if modules != members:
                names.add(base)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "lls":
            names.add(f"lls.{node.attr}")
    return {n for n in names if module_file(n) is not None}


@functools.cache
def dependencies(module: str) -> tuple[Path, ...]:
    """Source files of ``module`` and of every ``lls`` module it reaches, sorted."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += sorted(lls_references(path.read_text(), name))
    return tuple(sorted(seen))


@functools.cache
def code_hash(*modules: str) -> str:
    """SHA-256 (12 hex digits) of the ``lls`` code that ``modules`` depend on (all of ``lls`` if none)."""
    if modules:
        paths = sorted({path for module in modules for path in dependencies(module)})
    else:
        paths = sorted(PACKAGE_DIR.rglob("*.py"))
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def memory(module: str | None = None) -> joblib.Memory:
    """The :class:`joblib.Memory` for ``module``'s code version (``location=None`` disables it)."""
    if os.environ.get("LLS_NO_CACHE") == "1":
        return joblib.Memory(location=None, verbose=0)
    return joblib.Memory(location=cache_root() / "results" / code_hash(*filter(None, [module])), verbose=0)


class _CorruptEntryLog(logging.Handler):
    """Collects joblib's "Exception while loading results" log records during one call."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.corrupt = False

    def emit(self, record: logging.LogRecord) -> None:
        self.corrupt |= "Exception while loading results" in record.getMessage()


def cached(func):
    """Decorator: cache ``func``'s result on disk; a corrupt entry is reported and recomputed.

    joblib recomputes an entry it cannot unpickle and logs a traceback; this wrapper replaces
    that traceback with one clear line saying which function's entry was corrupt and that it
    was recomputed (and overwritten), so nothing stale is ever served.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        handler = _CorruptEntryLog()
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [handler]
        try:
            result = memory(func.__module__).cache(func)(*args, **kwargs)
        finally:
            root.handlers = saved
        if handler.corrupt:
            print(f"[lls.cache] a corrupt cache entry of {func.__qualname__} was found, recomputed "
                  f"and overwritten (cache: {memory(func.__module__).location}).")
        return result

    wrapper.uncached = func
    return wrapper
