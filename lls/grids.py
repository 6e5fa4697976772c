"""Grids of sizes and scales that chapters sweep over."""

from __future__ import annotations

import numpy as np


def powers_of_two(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, with ``n`` itself appended when it is not a power of two."""
    out = [1]
    while out[-1] * 2 <= n:
        out.append(out[-1] * 2)
    return out if out[-1] == n else out + [n]


def log_grid(low: float, high: float, n: int) -> np.ndarray:
    """``n`` log-spaced values from ``low`` to ``high`` (both included), shape ``(n,)``."""
    return np.geomspace(low, high, n)
