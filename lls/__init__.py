"""``lls``: helper package of the executable book on local linear structures.

Notebooks import this package and only call it, plot and explain. Submodules are imported
lazily (``lls.presets``, ``lls.models``, ...), so ``import lls`` is cheap.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    try:
        return importlib.import_module(f"lls.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"lls.{name}":
            raise AttributeError(f"module 'lls' has no attribute {name!r}") from None
        raise
