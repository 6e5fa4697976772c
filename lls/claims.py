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

from lls.stats import Interval

VERDICTS = ("reproduced", "partly", "not reproduced", "contradicted", "inconclusive", "verified (math)",
            "not run")
"""The verdict vocabulary. ``contradicted``: significantly in the opposite direction;
``inconclusive``: the interval straddles the rule's threshold; ``verified (math)``: a check of a
mathematical identity, not an empirical reproduction."""

KINDS = ("math", "empirical")


@dataclass(frozen=True)
class RuleChange:
    """A change to a claim's rule (or to a protocol choice its verdict rests on) made after
    results had been seen: it is listed in the book, never hidden."""

    commit: str
    what: str
    why: str


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
    fixed_in: tuple[str, ...] = ()
    """commits in which the rule was first fixed (one per chapter that judges the claim)"""
    changes: tuple[RuleChange, ...] = ()
    """changes made after results had been seen (the book's "rules changed after the data")"""


AFTER_CPU = "made after the chapter had run on the cpu preset (which of its results had been seen is not recorded)"

CH1_MATH = RuleChange("98f5706", "chapter 1: its checks of C5 (Monte Carlo), C6 (constructed problem) and C7 "
                      "(quadratic) answer 'verified (math)' or 'contradicted' (C6's near miss 'inconclusive'), "
                      "was 'reproduced' / 'partly' / 'not reproduced'; thresholds unchanged",
                      "issue 12's vocabulary for checks of a mathematical identity; " + AFTER_CPU)
CH2_SEEDS = RuleChange("4e7b31e", "chapter 2: the cpu preset runs 5 seeds (was 3); every chapter-2 verdict rests on "
                       "them", "the 3-seed cpu run under the new interval rules had left C1, C3 and C10 inconclusive "
                       "(t-intervals of ±4.3 SE); C2 and C4 were reproduced at 3 seeds; made after seeing that run")

CH5_TUNED_CUTS = RuleChange("c86ba3f", "chapter 5: on cpu the tuned variant runs only 'tuned_concepts' (truth, "
                            "plural, past_tense; number_words tuned is 'not run') and picks its block among "
                            "'tuned_grid_layers' (one block, C8's) instead of the untuned variant's grid",
                            "the time budget; decided after the new tuning (7aa66ab) had passed its gate and before "
                            "any tuned C8 or C9 row had been computed")

REGISTRY: dict[str, ClaimSpec] = {s.id: s for s in (
    ClaimSpec("C1", "task gradients have strong local low-rank structure", None, None, "empirical",
              {"rank_ratio_reproduced": 0.25, "rank_ratio_partly": 0.6, "structured_null": 1.0},
              fixed_in=("a696c1c",), changes=(
                  RuleChange("a696c1c", "chapter 2: C1 decided on the 95 % t-interval over seeds of the ratio of θ_f's "
                             "effective rank to the lowest-rank structured baseline's (shuffled targets, other tasks' "
                             "gradients, centred gradients), contradicted above 1; was the point ratio to Gaussian "
                             "rows of equal norm", "Gaussian rows are nearly orthogonal in D ≈ 1e5 (a strawman) and a "
                             "point estimate is no verdict (issue 12); " + AFTER_CPU), CH2_SEEDS)),
    ClaimSpec("C2", "static bases (computed before recovery) miss the recovery direction", None, None,
              "empirical", {"synthetic_static_max": 0.5, "synthetic_no_gap": 0.0, "lora_prefix_fraction": 0.5,
                            "lora_null_ratio": 1.0},
              fixed_in=("a696c1c", "c0cbb78"), changes=(
                  RuleChange("a696c1c", "chapter 2: C2 decided on 95 % t-intervals over seeds of the per-seed best "
                             "capture by every static basis (Krylov and the Adam-aware bases included) and of the "
                             "prefix's lead over it; contradicted when a static basis captures significantly more; "
                             "was the best mean among four bases, Krylov reported beside them",
                             "issue 12: every static basis, and a verdict on intervals; " + AFTER_CPU),
                  RuleChange("c0cbb78", "chapter 3: C2 decided on the 95 % t-interval over runs of each static basis's "
                             "capture over the prefix's, over every basis (Krylov and the Adam-aware ones included; "
                             "the weakest decides), runs where A was forgotten (was: the paper's bases' means)",
                             "issue 12, verdicts on intervals with the sceptic's bases; " + AFTER_CPU),
                  RuleChange("4d68426", "chapter 3: the SGD arm's learning rate is 1/lambda_max at theta_f (was: SGD's "
                             "first step as long as Adam's)", "the first rule diverged on one cpu-preset run (task-A "
                             "loss 7.3 after SGD recovery); the SGD arm is reported beside C2/C4, not in their verdicts"),
                  CH2_SEEDS)),
    ClaimSpec("C3", "the useful basis drifts substantially within 100 steps", 100.0, "steps", "empirical",
              {"overlap_halved": 0.5, "synthetic_stable_lag": 200.0, "lora_ceiling_fraction": 0.5,
               "lora_no_drift": 0.8}, fixed_in=("a696c1c", "c0cbb78"),
              changes=(
                  RuleChange("c0cbb78", "chapter 3: C3's lag measured against a noise ceiling (overlap of two independent "
                             "gradient sets at the same step; the lag is where the cross-set overlap falls to "
                             "lora_ceiling_fraction of it), checkpoints every 2 steps (was 20), decided on a t-interval",
                             "the cpu lags equalled the checkpoint spacing (a resolution floor) and same-batch overlaps "
                             "hid the noise; " + AFTER_CPU),
                  RuleChange("4d68426", "chapter 3: each cross-set overlap divided by the geometric mean of its two "
                             "steps' ceilings (was: by the mean ceiling); checkpoints every 4 steps over 32 (was 2 over 16)",
                             "one cpu-preset run of the new protocol showed the same-step overlap falling from about 0.2 "
                             "to 0.01 as the gradient signal faded, which a single mean ceiling reads as drift; its drift "
                             "showed no change at lags 2 to 8"),
                  RuleChange("106f1c9", "chapter 2: the overlap counts as halved at <= 0.5 (was < 0.5), the one "
                             "rule chapter 3 already used", "one shared halving-lag function; it moved no lag on smoke "
                             "or cpu (the closest mean overlap was 0.004 from 0.5); " + AFTER_CPU),
                  RuleChange("a696c1c", "chapter 2: C3 decided on the 95 % t-interval over seeds of the halving lags "
                             "(a seed that never halves counted at the window, a lower bound, which then allows only "
                             "'not reproduced' or 'contradicted'), contradicted above synthetic_stable_lag; was "
                             "'every seed within 100 steps'", "issue 12; " + AFTER_CPU), CH2_SEEDS)),
    ClaimSpec("C4", "the first recovery updates capture most of the LoRA recovery displacement (77 %)", 0.77,
              "fraction of ‖Δ‖²", "empirical",
              {"synthetic_reproduced": 0.5, "synthetic_partly": 0.25, "lora_tolerance": 0.1, "lora_partly": 0.5,
               "lora_minority": 0.25, "lora_screen_undone": 0.5, "forgotten_undone": 0.5, "forgotten_majority": 0.5},
              fixed_in=("a696c1c", "c0cbb78"), changes=(
                  RuleChange("a696c1c", "chapter 2: C4 decided on the 95 % t-interval over seeds of the prefix "
                             "capture (was the mean), contradicted below k/D", "issue 12; " + AFTER_CPU),
                  CH2_SEEDS,
                  RuleChange("a97332c", "chapter 3: C4 capped at 'partly' when task A was not forgotten in most runs",
                             "half the cpu runs never forgot task A; " + AFTER_CPU),
                  RuleChange("6adb137", "chapter 3: 'forgotten' redefined from 'loss doubled' to 'at least half of "
                             "A's loss gain undone'", "scale-free criterion; " + AFTER_CPU),
                  RuleChange("c0cbb78", "chapter 3: the cap at 'partly' (a97332c) replaced by a forgetting screen fixed "
                             "before capture is measured (a pair passes when B undoes lora_screen_undone of A's gain on a "
                             "screening seed; first 4 of 8 candidate pairs); C4 read only on runs where A was forgotten "
                             "(the others reported apart), at k = 0.1·T for T = 20 and 40 (was k = 10 of 100), on a "
                             "95 % t-interval, contradicted below lora_minority",
                             "half the cpu runs never forgot A and 'only two pairs'; " + AFTER_CPU),
                  RuleChange("d79b4ac", "chapter 3: cpu learning rate 3e-3 for all phases (was 1e-3); the screen's rule "
                             "unchanged", "at 1e-3 the screen passed 1 of 8 candidate pairs (no capture had been "
                             "measured on the new protocol's runs)"))),
    ClaimSpec("C5", "best-of-N first-order gain is dimension-independent (Theorem 1)", 1.0,
              "ratio to σ‖g‖e_N (Theorem 1)", "math",
              {"theory_z": 3.0, "theory_p": 0.01, "reproduced_low": 0.8, "reproduced_high": 1.25, "partly_low": 0.6,
               "partly_high": 1.6, "contradicted_below": 0.5, "contradicted_above": 2.0},
              fixed_in=("99ff17f", "9672fad"), changes=(
                  RuleChange("f076355", "chapter 1: C5 decided on the ratio pooled over D with a chi-squared test of "
                             "dimension independence", AFTER_CPU),
                  RuleChange("1f95c43", "chapter 4: C5 computed from local-linear searches only (practical-norm "
                             "searches dropped from the ratio)", "their ratios were outside the band; " + AFTER_CPU),
                  RuleChange("9672fad", "chapter 4: C5 decided on the 95 % t-interval of the mean ratio over noise "
                             "streams within [0.8, 1.25] / [0.6, 1.6] (contradicted outside [0.5, 2]), replacing the "
                             "median and every-ratio test; every search is reported and enters C5 when the F1/F2 "
                             "diagnostic calls it local-linear (the practical-norm searches too), never by its ratio",
                             "the referee standard of issue 12 (intervals, no selection by ratio); the earlier cpu "
                             "result had been seen"),
                  RuleChange("7d9a8bb", "chapter 4: the C6 subspaces given by a basis of the same k searched with one "
                             "seed count as one noise stream of the C5 interval (they draw the same z), not one each",
                             "found after the cpu run of 9672fad, which counted 24 streams: those searches are not "
                             "independent; " + AFTER_CPU), CH1_MATH)),
    ClaimSpec("C6", "random-search ranking of subspaces follows signal density, not mass", None, None, "math",
              {"theory_rho_partly": 0.8, "search_rho": 0.7, "search_rho_null": 0.0}, fixed_in=("99ff17f", "9672fad"),
              changes=(
                  RuleChange("1970daa", "chapter 4: C6 judged at two norms (local and practical), 'partly' when it "
                             "holds at one", AFTER_CPU),
                  RuleChange("9672fad", "chapter 4: C6 decided at each norm on the 95 % t-interval over search seeds "
                             "of Spearman(gain, density) against 0.7 (contradicted below 0), density beating mass "
                             "by the interval of their per-seed difference, instead of on mean correlations",
                             "the referee standard of issue 12; the earlier cpu result had been seen"), CH1_MATH)),
    ClaimSpec("C7", "under constant Hessian recovery lives in a Krylov subspace (Lemma 1)", None, None, "math",
              {"residual_max": 1e-10}, fixed_in=("99ff17f",), changes=(CH1_MATH,)),
    ClaimSpec("C8", "one gradient step shifts activations along the CAA vector (cosine 0.58)", 0.58, "cosine",
              "empirical", {"tolerance": 0.15, "null_quantile": 0.95}, fixed_in=("212aead", "a72a494", "7aa66ab"), changes=(
                  RuleChange("6048e54", "chapter 5: statements split into halves by fact (true and false twins "
                             "together) instead of by statement", "a split by statement made CAA anti-correlated "
                             "across halves (cosine about -0.7); " + AFTER_CPU),
                  RuleChange("a72a494", "chapter 5: C8 decided on a t-interval over data splits, per concept, "
                             "model variant and shift (mean shift and ΔCAA = shift on true minus shift on false "
                             "probes): reproduced when the interval clears the paper's cosine minus 'tolerance', "
                             "partly when it clears the 'null_quantile' of |cos| of random directions, "
                             "contradicted when wholly below minus that null; capped at partly when the labelled "
                             "step does not beat the shuffled-label step (paired interval over splits)",
                             "issue 13 (the old rule compared point estimates and the mean shift only); "
                             + AFTER_CPU),
                  RuleChange("7aa66ab", "chapter 5: the tuned variant's format tuning also learns factual relations "
                             "that no evaluated topic shares (lls/data/tuning_facts.json), beside word-task "
                             "statements, for 80 steps (was 40, word tasks only); its gate reads every truth "
                             "validation statement (was the n_eval = 40 the grids read); C8's tuned rows use it",
                             "in the cpu run of a72a494..25d33cd the old tuned model failed its gate (validation "
                             "AUROC 0.58 [0.40, 0.76] on 40 statements), so every tuned row was 'not run'; the "
                             "test split was used for no choice"), CH5_TUNED_CUTS)),
    ClaimSpec("C9", "that shift steers like CAA (Qwen-0.5B BoolQ; OLMo less consistent)", 1.2, None,
              "empirical", {"caa_fraction": 0.5}, fixed_in=("212aead", "a72a494", "7aa66ab"), changes=(
                  RuleChange("caa03ef", "chapter 5: steering scales widened to ±8 and ±32 CAA norms",
                             "±1 and ±4 changed no accuracy on SmolLM2; " + AFTER_CPU),
                  RuleChange("a72a494", "chapter 5: C9 decided on bootstrap intervals over test statements "
                             "(layer and positive scale chosen on a validation split): contradicted when the step "
                             "vector's gain is wholly below 0; not reproduced when it does not beat the best null "
                             "(random directions of equal norm, pure threshold shift; chosen on validation alike); "
                             "inconclusive when that comparison straddles 0; reproduced when it beats the null and "
                             "its gain minus 'caa_fraction' times CAA's is wholly >= 0, partly otherwise",
                             "issue 13 (the old rule picked the scale on the reported statements and compared "
                             "point estimates with one random direction); " + AFTER_CPU),
                  RuleChange("7aa66ab", "chapter 5: the format tuning behind C9's tuned rows also learns factual "
                             "relations no evaluated topic shares, beside word-task statements, 80 steps (was 40, "
                             "word tasks only); the tuning gate reads every truth validation statement (was 40)",
                             "the old tuned model failed its gate in the cpu run of a72a494..25d33cd (AUROC 0.58 "
                             "[0.40, 0.76]), leaving every tuned C9 row 'not run'; no choice used the test split"),
                  CH5_TUNED_CUTS)),
    ClaimSpec("C10", "sequential specialisation is brittle, simultaneous multitask training robust", None, None,
              "empirical", {"margin": 0.02, "no_gap": 0.0, "comparable_accuracy": 0.05},
              fixed_in=("a696c1c",), changes=(
                  RuleChange("1f372db", "chapter 2: C10 read on task A only, with a fixed 2-point margin",
                             AFTER_CPU),
                  RuleChange("a696c1c", "chapter 2: C10 decided on 95 % t-intervals over seeds of the noise and "
                             "forgetting gaps; a significant contrary gap is 'contradicted'; inconclusive when the "
                             "two models' clean accuracies on A differ by more than comparable_accuracy",
                             "issue 12: a contrary result was not penalised; " + AFTER_CPU), CH2_SEEDS)),
    ClaimSpec("C11", "low-rank claims partly fail at 7B scale", None, None, "empirical"),
)}


def decide(interval: Interval, reproduced_at: float, *, partly_at: float | None = None, null: float | None = None,
           higher_supports: bool = True) -> str:
    """The verdict of an interval against a rule's thresholds (never of a point estimate).

    With ``higher_supports`` (the claim says the value is large): *reproduced* when the whole
    interval is at or above ``reproduced_at``; *partly* when it lies between ``partly_at`` and
    ``reproduced_at``; *contradicted* when it lies wholly below ``null`` (an effect significantly
    in the opposite direction); *not reproduced* when it lies wholly below the lowest threshold
    but not below ``null``; *inconclusive* when it straddles a threshold or is unknown (one
    unit). ``higher_supports=False`` mirrors every comparison (the claim says the value is small).
    """
    if not interval.known:
        return "inconclusive"
    sign = 1.0 if higher_supports else -1.0
    low, high = sorted((sign * interval.low, sign * interval.high))
    top = sign * reproduced_at
    bottom = top if partly_at is None else sign * partly_at
    if low >= top:
        return "reproduced"
    if partly_at is not None and low >= bottom and high < top:
        return "partly"
    if null is not None and high < sign * null:
        return "contradicted"
    if high < bottom:
        return "not reproduced"
    return "inconclusive"


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
    :data:`VERDICTS`, ``note`` what was measured; ``n``, ``ci`` and ``interval_method`` give the
    interval the verdict was decided on (see :meth:`from_interval`). ``paper`` and ``paper_unit``
    are filled from :data:`REGISTRY`, and ``kind`` too unless given.
    """

    id: str
    value: float | None
    verdict: str
    note: str
    unit: str = ""
    spread: float | None = None
    seeds: list[int] = field(default_factory=list)
    n: int | None = None
    """independent units (seeds, runs) behind ``value``; ``None`` when not a mean over units"""
    ci: list[float] | None = None
    """[low, high] of the 95 % interval the verdict was decided on"""
    interval_method: str = ""
    """how ``ci`` was computed and over what, e.g. "95% t-interval over 3 seeds"; for a ``spread``
    that is not an SD across independent seeds (a Monte-Carlo SE, searches on one model), it says so"""
    kind: str | None = None
    """``math`` or ``empirical``; ``None`` takes the registry's kind (a chapter that measures a
    ``math`` claim on trained models passes ``empirical``)"""
    concept: str = ""
    """what a steering claim's vectors contrast (chapter 5: ``truth``, ``plural``, ...); empty elsewhere"""
    model_variant: str = ""
    """which model a steering claim was measured on (chapter 5: ``untuned``, ``tuned``); empty elsewhere"""
    reading: str = ""
    """how a steering row reads its result (chapter 5: C8 ``mean shift`` or ``ΔCAA``, C9 ``question``
    or ``likelihood`` target); empty elsewhere"""
    paper: float | None = field(init=False)
    paper_unit: str | None = field(init=False)

    def __post_init__(self):
        if self.id not in REGISTRY:
            raise ValueError(f"unknown claim id {self.id!r}; the ids are {list(REGISTRY)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; use one of {VERDICTS}")
        spec = REGISTRY[self.id]
        self.paper, self.paper_unit = spec.paper, spec.paper_unit
        self.kind = self.kind or spec.kind
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: unknown kind {self.kind!r}; use one of {KINDS}")
        if self.value is not None:
            self.value = float(self.value)
            if not math.isfinite(self.value):
                raise ValueError(f"claim {self.id}: value {self.value} is not finite")

    @classmethod
    def from_interval(cls, claim_id: str, interval: Interval, verdict: str, note: str, unit: str = "",
                      seeds: list[int] | None = None, kind: str | None = None) -> Claim:
        """A claim whose value, spread, n and interval come from ``interval``."""
        return cls(claim_id, interval.mean, verdict, note, unit, interval.sd, list(seeds or []), interval.n,
                   [interval.low, interval.high] if interval.known else None, interval.method, kind)
