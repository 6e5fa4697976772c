"""Chapter 4: random parameter search (Theorem 1, Proposition 1) around chapter 2's theta_f.

``config`` -> ``protocol`` (cached searches) -> ``analysis`` (one :class:`Summary`, tables) ->
``claims`` (C5, C6) and ``figures``.
"""

from lls.chapters.random_search.analysis import (
    Summary,
    c5_ratios,
    curves_table,
    ranking_table,
    ratios_table,
    summarize,
)
from lls.chapters.random_search.claims import claims
from lls.chapters.random_search.config import PRESETS, Config
from lls.chapters.random_search.figures import (
    figure_best_of_n,
    figure_density,
    figure_diagnostic,
    figure_lowrank,
    figure_randopt,
)
from lls.chapters.random_search.lowrank_analysis import law_table, noise_table, summarize_lowrank
from lls.chapters.random_search.protocol import (
    lm_curves,
    lowrank_law,
    lowrank_searches,
    randopt_synthetic,
    subspace_ranking,
    synthetic_curves,
)

__all__ = [
    "PRESETS", "Config", "Summary", "c5_ratios", "claims", "curves_table", "figure_best_of_n", "figure_density",
    "figure_diagnostic", "figure_lowrank", "figure_randopt", "law_table", "lm_curves", "lowrank_law",
    "lowrank_searches", "noise_table", "randopt_synthetic", "ranking_table", "ratios_table", "subspace_ranking",
    "summarize", "summarize_lowrank", "synthetic_curves",
]
