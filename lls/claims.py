"""The claims registry: what the paper claims, its number and unit, and the rules that judge ours.

One :class:`ClaimSpec` per claim C1–C11 holds the statement, the paper's value *with its unit*
(``None`` where the paper gives no number or no unit), the kind (``math``: a check of a
mathematical identity; ``empirical``: a measurement on trained models) and every threshold a
verdict rule uses, as named constants. Chapters read their thresholds from here
(``REGISTRY["C4"].thresholds["lora_partly"]``) and build :class:`Claim` objects whose paper
value comes from here, so no paper number or threshold is typed anywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

VERDICTS = ("reproduced", "partly", "not reproduced", "contradicted", "inconclusive", "verified (math)",
            "not run")
"""The verdict vocabulary. ``contradicted``: significantly in the opposite direction;
``inconclusive``: the interval straddles the rule's threshold; ``verified (math)``: a check of a
mathematical identity, not an empirical reproduction."""

KINDS = ("math", "empirical")


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of the paper: statement, the paper's value and unit, kind, rule thresholds."""

    id: str
    statement: str
    paper: float | None
    """the paper's number (``None`` when it states none)"""
    paper_unit: str | None
    """the unit of ``paper`` (``None`` when the paper's unit is unknown or there is no number)"""
    kind: str
    thresholds: Mapping[str, float] = field(default_factory=dict)
    """named constants of the verdict rules, per chapter where chapters judge differently"""


REGISTRY: dict[str, ClaimSpec] = {s.id: s for s in (
    ClaimSpec("C1", "task gradients have strong local low-rank structure", None, None, "empirical",
              {"rank_ratio_reproduced": 0.25, "rank_ratio_partly": 0.6}),
    ClaimSpec("C2", "static bases (computed before recovery) miss the recovery direction", None, None,
              "empirical", {"synthetic_static_max": 0.5, "lora_prefix_fraction": 0.5}),
    ClaimSpec("C3", "the useful basis drifts substantially within 100 steps", 100.0, "steps", "empirical",
              {"overlap_halved": 0.5}),
    ClaimSpec("C4", "the first recovery updates capture most of the LoRA recovery displacement (77 %)", 0.77,
              "fraction of ‖Δ‖²", "empirical",
              {"synthetic_reproduced": 0.5, "synthetic_partly": 0.25, "lora_tolerance": 0.1, "lora_partly": 0.5,
               "forgotten_undone": 0.5}),
    ClaimSpec("C5", "best-of-N first-order gain is dimension-independent (Theorem 1)", 1.0,
              "ratio to σ‖g‖e_N (Theorem 1)", "math",
              {"theory_z": 3.0, "theory_p": 0.01, "median_low": 0.8, "median_high": 1.25, "each_low": 0.6,
               "each_high": 1.6, "partly_low": 0.6, "partly_high": 1.6}),
    ClaimSpec("C6", "random-search ranking of subspaces follows signal density, not mass", None, None, "math",
              {"theory_rho_partly": 0.8, "search_rho": 0.7}),
    ClaimSpec("C7", "under constant Hessian recovery lives in a Krylov subspace (Lemma 1)", None, None, "math",
              {"residual_max": 1e-10}),
    ClaimSpec("C8", "one gradient step shifts activations along the CAA vector (cosine 0.58)", 0.58, "cosine",
              "empirical", {"tolerance": 0.15}),
    ClaimSpec("C9", "that shift steers like CAA (Qwen-0.5B BoolQ; OLMo less consistent)", 1.2, None,
              "empirical", {"caa_fraction": 0.5}),
    ClaimSpec("C10", "sequential specialisation is brittle, simultaneous multitask training robust", None, None,
              "empirical", {"margin": 0.02}),
    ClaimSpec("C11", "low-rank claims partly fail at 7B scale", None, None, "empirical"),
)}


def threshold(claim_id: str, name: str) -> float:
    """The named threshold ``name`` of ``claim_id``'s rule (a KeyError names the known ones)."""
    table = REGISTRY[claim_id].thresholds
    if name not in table:
        raise KeyError(f"{claim_id} has no threshold {name!r}; it has {sorted(table)}")
    return table[name]


@dataclass
class Claim:
    """One measured claim, as written to ``metrics.json``.

    ``value`` is our number (mean over ``seeds`` when several), ``spread`` its standard deviation
    over seeds (``None`` for one seed), ``unit`` how to read it, ``verdict`` one of
    :data:`VERDICTS`, ``note`` what was measured. ``paper``, ``paper_unit`` and ``kind`` are
    filled from :data:`REGISTRY`.
    """

    id: str
    value: float | None
    verdict: str
    note: str
    unit: str = ""
    spread: float | None = None
    seeds: list[int] = field(default_factory=list)
    paper: float | None = field(init=False)
    paper_unit: str | None = field(init=False)
    kind: str = field(init=False)

    def __post_init__(self):
        if self.id not in REGISTRY:
            raise ValueError(f"unknown claim id {self.id!r}; the ids are {list(REGISTRY)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; use one of {VERDICTS}")
        spec = REGISTRY[self.id]
        self.paper, self.paper_unit, self.kind = spec.paper, spec.paper_unit, spec.kind
        if self.value is not None:
            self.value = float(self.value)
            if not math.isfinite(self.value):
                raise ValueError(f"claim {self.id}: value {self.value} is not finite")
