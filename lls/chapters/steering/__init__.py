"""Chapter 5: from one gradient step to a steering vector (claims C8 and C9).

``config`` (parameters and presets) -> ``protocol`` (the cached experiments: :func:`format_tuning`,
:func:`alignment`, :func:`steering_grid`, all through :func:`run`) -> ``analysis``
(:func:`summarize`: the C8 and C9 rows, the :class:`Summary`) -> ``claims`` (the verdicts, by
``rules``), ``report`` (tables) and ``figures``.
"""

from lls.chapters.steering.analysis import (
    C8Row,
    C9Row,
    Summary,
    TuningRow,
    c8_rows,
    c9_row,
    summarize,
    tuning_row,
)
from lls.chapters.steering.auc import auroc, auroc_interval, tuning_gate
from lls.chapters.steering.claims import c8_claim, c9_claim, claims
from lls.chapters.steering.concepts import CONCEPTS, concept_splits
from lls.chapters.steering.config import PRESETS, Config
from lls.chapters.steering.figures import c8_figure, c9_figure, explorer_figure
from lls.chapters.steering.protocol import (
    STEP_VECTORS,
    AlignmentSpec,
    DataSpec,
    GridSpec,
    Results,
    SteeringGrid,
    alignment,
    format_tuning,
    run,
    steering_grid,
)
from lls.chapters.steering.report import c8_table, c9_table, gate_sentence, tuning_table, verdict_sentence
from lls.chapters.steering.rules import c8_bar, c8_verdict, c9_verdict
from lls.chapters.steering.splits import fact_groups, grid_layer_ids, load_statements, split_halves, three_way

__all__ = [
    "CONCEPTS", "PRESETS", "STEP_VECTORS", "AlignmentSpec", "C8Row", "C9Row", "Config", "DataSpec", "GridSpec",
    "Results", "SteeringGrid", "Summary", "TuningRow", "alignment", "auroc", "auroc_interval", "c8_bar", "c8_claim",
    "c8_figure", "c8_rows", "c8_table", "c8_verdict", "c9_claim", "c9_figure", "c9_row", "c9_table", "c9_verdict",
    "claims", "concept_splits", "explorer_figure", "fact_groups", "format_tuning", "grid_layer_ids", "load_statements",
    "run", "split_halves", "steering_grid", "summarize", "three_way", "tuning_gate", "tuning_row", "tuning_table",
    "verdict_sentence", "gate_sentence",
]
