"""Chapter 2: local linear structure of a small multitask transformer on synthetic tasks.

``config`` (parameters, :class:`Training`) -> ``protocol`` (cached: theta0, theta_f, recovery and
its measurements, robustness) -> ``analysis`` (one :class:`Summary`) -> ``claims`` (C1-C4, C10)
and ``figures``.
"""

from lls.chapters.synthetic.analysis import (
    Summary,
    arm_table,
    capture_table,
    examples,
    horizon_table,
    lag_lines,
    regime_table,
    seed_table,
    summarize,
)
from lls.chapters.synthetic.claims import claims, extra_numbers, rules_markdown
from lls.chapters.synthetic.config import PRESETS, Config, Training
from lls.chapters.synthetic.figures import (
    accuracy_figure,
    capture_figure,
    drift_figure,
    lag_figure,
    recovery_figure,
    regime_figure,
    spectrum_figure,
)
from lls.chapters.synthetic.protocol import (
    build,
    forgotten,
    pretrain,
    recovered,
    regime_runs,
    robustness,
    seed_runs,
    task_family,
)

__all__ = [
    "PRESETS", "Config", "Summary", "Training", "accuracy_figure", "arm_table", "build", "capture_figure", "capture_table",
    "claims", "drift_figure", "examples", "extra_numbers", "forgotten", "horizon_table", "lag_figure", "lag_lines", "pretrain", "recovered",
    "recovery_figure", "regime_figure", "regime_runs", "regime_table", "robustness", "rules_markdown", "seed_runs", "seed_table",
    "spectrum_figure", "summarize", "task_family",
]
