"""Results cache for expensive experiment calls, keyed by function, arguments and ``lls``'s code.

Built on :class:`joblib.Memory`: joblib keys an entry on the function's source and the hash of
its arguments, writes entries atomically (temporary file, then rename), and does not serve an
entry it cannot load. On top of that the cache directory is named by a hash of every ``.py``
file of the ``lls`` package, so any change to ``lls`` (which may change a result through a
helper the cached function calls) starts a fresh cache instead of serving a stale one.

Use ``@cached`` on a module-level function whose arguments are plain values or
:class:`lls.presets.Config` objects. The location is ``$LLS_CACHE_DIR`` if set, else
``~/.cache/lls``; ``LLS_NO_CACHE=1`` turns caching off.
"""

from __future__ import annotations

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


@functools.cache
def code_hash() -> str:
    """SHA-256 (first 12 hex digits) of every ``.py`` file in the ``lls`` package, by path."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def memory() -> joblib.Memory:
    """The :class:`joblib.Memory` for the current code version (``location=None`` disables it)."""
    if os.environ.get("LLS_NO_CACHE") == "1":
        return joblib.Memory(location=None, verbose=0)
    return joblib.Memory(location=cache_root() / "results" / code_hash(), verbose=0)


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
            result = memory().cache(func)(*args, **kwargs)
        finally:
            root.handlers = saved
        if handler.corrupt:
            print(f"[lls.cache] a corrupt cache entry of {func.__qualname__} was found, recomputed "
                  f"and overwritten (cache: {memory().location}).")
        return result

    wrapper.uncached = func
    return wrapper
