"""Summary statistics over independent units (seeds, runs): the numbers every verdict reads."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for a single value) of per-seed numbers."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)
