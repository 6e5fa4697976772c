"""Chapter 1, geometry theory: Theorem 1, the F1/F2 diagnostic, Proposition 1, Lemma 1, the pushforward.

The data walk: :mod:`.config` (parameters, presets) -> :mod:`.protocol` (the cached experiments,
returning the dataclasses of :mod:`.results`) -> :mod:`.analysis` (one summary per section,
:class:`Summary` over all) -> :mod:`.claims` (C5, C6, C7), :mod:`.tables` and :mod:`.figures`. The notebook
``notebooks/01_theory.md`` calls only the names below.
"""

from lls.chapters.theory.analysis import (
    Summary,
    extra_metrics,
    summarize_f1f2,
    summarize_lemma1,
    summarize_proposition1,
    summarize_pushforward,
    summarize_theorem1,
)
from lls.chapters.theory.claims import claims, rules_text
from lls.chapters.theory.config import PRESETS, Config
from lls.chapters.theory.figures import (
    explore_text,
    fig_collapse,
    fig_density,
    fig_f1f2,
    fig_krylov,
    fig_pushforward,
    fig_second_order,
    fig_sigma_explorer,
)
from lls.chapters.theory.protocol import f1f2, lemma1, max_normal_check, proposition1, pushforward, theorem1
from lls.chapters.theory.tables import (
    density_table,
    f1f2_table,
    krylov_tables,
    max_normal_table,
    net_gain_table,
    pushforward_table,
    theorem1_table,
)

__all__ = [
    "PRESETS", "Config", "Summary", "claims", "density_table", "explore_text", "extra_metrics", "f1f2", "rules_text",
    "f1f2_table", "fig_collapse", "fig_density", "fig_f1f2", "fig_krylov", "fig_pushforward", "fig_second_order",
    "fig_sigma_explorer", "krylov_tables", "lemma1", "max_normal_check", "max_normal_table", "net_gain_table",
    "proposition1", "pushforward", "pushforward_table", "summarize_f1f2", "summarize_lemma1",
    "summarize_proposition1", "summarize_pushforward", "summarize_theorem1", "theorem1", "theorem1_table",
]
