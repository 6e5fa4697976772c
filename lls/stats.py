"""Summary statistics over independent units (seeds, runs): the numbers every verdict reads."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def mean_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for a single value) of per-seed numbers."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` independent units with its spread and a 95 % interval.

    ``sd`` is the sample standard deviation across the units (``None`` for one unit); ``low``/
    ``high`` bound the interval (``None`` when it cannot be computed, e.g. one unit); ``method``
    says how it was computed and over what (``"t over 3 seeds"``).
    """

    mean: float
    sd: float | None
    n: int
    low: float | None
    high: float | None
    method: str

    @property
    def known(self) -> bool:
        """True when both ends of the interval are known."""
        return self.low is not None and self.high is not None


def t_interval(values: Sequence[float], unit: str = "seeds", level: float = 0.95) -> Interval:
    """Student-t interval for the mean of independent ``values`` (one per ``unit``)."""
    values = np.asarray([float(v) for v in values])
    n = len(values)
    mean, sd = mean_spread(values)
    if n < 2:
        return Interval(mean, None, n, None, None, f"one {unit[:-1] if unit.endswith('s') else unit}: no interval")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)
    return Interval(mean, sd, n, float(mean - half), float(mean + half), f"{level:.0%} t-interval over {n} {unit}")


def bootstrap_interval(values: Sequence[float], unit: str = "runs", level: float = 0.95, seed: int = 0,
                       resamples: int = 9999) -> Interval:
    """Percentile bootstrap interval for the mean of independent ``values`` (scipy.stats.bootstrap)."""
    values = np.asarray([float(v) for v in values])
    mean, sd = mean_spread(values)
    if len(values) < 2 or np.ptp(values) == 0:
        return t_interval(values, unit, level)
    found = stats.bootstrap((values,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile",
                            random_state=np.random.default_rng(seed))
    low, high = found.confidence_interval
    return Interval(mean, sd, len(values), float(low), float(high),
                    f"{level:.0%} percentile bootstrap over {len(values)} {unit}")


def se_interval(mean: float, se: float, n: int, what: str, level: float = 0.95) -> Interval:
    """Normal interval ``mean ± z·se`` for an estimate with a known standard error (Monte Carlo)."""
    half = stats.norm.ppf(0.5 + level / 2) * se
    return Interval(float(mean), None, n, float(mean - half), float(mean + half),
                    f"{level:.0%} normal interval, SE of {what}")
