"""Chapter 3, LoRA subspace drift: forget and recover a task in a pretrained LM's adapter space.

``config`` (parameters, presets) -> ``plan`` (which screens and runs) -> ``protocol`` (the cached
screens and runs; ``setup`` holds its plain helpers) -> ``analysis`` (one
:class:`Summary`) -> ``claims`` (C2, C3, C4) and ``figures``. The notebook calls what is listed
in ``__all__``.
"""

from lls.chapters.lora_drift.analysis import (
    Summary,
    dimensions_report,
    drift_report,
    evals_table,
    extra_numbers,
    forgetting_report,
    prefix_report,
    sgd_report,
    static_report,
    summarize,
    timings_report,
)
from lls.chapters.lora_drift.claims import claims, rules_text
from lls.chapters.lora_drift.config import PRESETS, Config
from lls.chapters.lora_drift.figures import (
    drift_figure,
    drift_picker,
    lag_figure,
    prefix_figure,
    static_figure,
)
from lls.chapters.lora_drift.plan import run_all, run_specs, screen_results, screen_specs
from lls.chapters.lora_drift.protocol import RunResult, RunSpec, run, screen

__all__ = [
    "PRESETS", "Config", "RunResult", "RunSpec", "Summary", "claims", "dimensions_report", "drift_figure",
    "drift_picker", "drift_report", "evals_table", "extra_numbers", "forgetting_report", "lag_figure",
    "prefix_figure", "prefix_report", "rules_text", "run", "run_all", "run_specs", "screen", "screen_results",
    "screen_specs", "sgd_report", "static_figure", "static_report", "summarize", "timings_report",
]
