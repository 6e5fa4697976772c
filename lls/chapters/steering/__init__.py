"""Chapter 5: from one gradient step to a steering vector (claims C8 and C9).

``config`` (parameters and presets) -> ``protocol`` (the cached experiments: :func:`alignment`,
:func:`steering_grid`, both through :func:`run`) -> ``analysis`` (:func:`summarize`: Table 6,
correlations, the :class:`Summary`) -> ``claims`` (the verdicts) and ``figures``.
"""

from lls.chapters.steering.analysis import (
    ModelSummary,
    Summary,
    gain,
    response_similarity,
    scale_report,
    side_cost,
    summarize,
    summarize_model,
    table6,
    table6_markdown,
)
from lls.chapters.steering.claims import c8_bar, c8_claim, c8_verdict, c9_claim, c9_verdict, claims
from lls.chapters.steering.config import PRESETS, Config
from lls.chapters.steering.figures import cosine_figure, explorer_figure
from lls.chapters.steering.protocol import (
    GRID_VECTORS,
    VECTORS,
    Alignment,
    AlignmentSpec,
    GridSpec,
    Results,
    SteeringGrid,
    alignment,
    run,
    steering_grid,
)
from lls.chapters.steering.splits import fact_groups, grid_layer_ids, split_halves

__all__ = [
    "GRID_VECTORS", "PRESETS", "VECTORS", "Alignment", "AlignmentSpec", "Config", "GridSpec", "ModelSummary",
    "Results", "SteeringGrid", "Summary", "alignment", "c8_bar", "c8_claim", "c8_verdict", "c9_claim", "c9_verdict", "claims",
    "cosine_figure", "explorer_figure", "fact_groups", "gain", "grid_layer_ids", "response_similarity", "run",
    "scale_report", "side_cost", "split_halves", "steering_grid", "summarize", "summarize_model", "table6",
    "table6_markdown",
]
